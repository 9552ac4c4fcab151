"""The services' processes and HTTP APIs (ingest, engine)."""
