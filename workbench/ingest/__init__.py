"""The ingest service: sources, the bronze writer, the spill, loss accounting. No JVM."""
