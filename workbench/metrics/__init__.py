"""Prometheus metrics of both services: the registry and pod label, ingestor_* and the engine's."""
