"""Silver to gold: windowed averages, alerts, rule aggregates, user-defined stream computations."""
