"""Lake maintenance: the retention policy, bronze retention, Delta steps, and their runner."""
