"""Config files: the schema (every default), loading with line numbers, starters and variants."""
