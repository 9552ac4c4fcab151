"""Silver to gold: windowed aggregates."""
