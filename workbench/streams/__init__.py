"""Streaming queries: what every query shares, the supervisor that runs them, batch latencies."""
