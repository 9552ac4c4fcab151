"""Bronze to silver: union schema, normalization, the batch processor, streams."""
