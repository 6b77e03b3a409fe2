"""Built-in training recipes (YAML)."""
