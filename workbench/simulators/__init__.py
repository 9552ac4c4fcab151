"""Demo sensors publishing to the broker."""
