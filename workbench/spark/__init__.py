"""Spark plumbing: session factory, JVM jar cache, Delta table helpers, lake files via Hadoop."""
