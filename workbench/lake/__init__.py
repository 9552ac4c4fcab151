"""The lake as storage: where files go (local or S3), and the browser over its layers."""
