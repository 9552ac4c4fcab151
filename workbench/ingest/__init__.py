"""Buffers, the bronze writer and its storage, ingest metrics. No Spark, no Delta."""
