"""Bronze to silver: normalization and value rules, devices, the batch body, the stream, preview."""
