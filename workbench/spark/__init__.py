"""The Spark session factory and the JVM jar cache."""
