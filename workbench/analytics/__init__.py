"""Computations (saved SQL) and tiles."""
