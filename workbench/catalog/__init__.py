"""The catalog database: migrations, sources, datasets and schemas, rules, computations."""
