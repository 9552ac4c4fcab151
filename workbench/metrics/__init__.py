"""Prometheus helpers shared by the services."""
