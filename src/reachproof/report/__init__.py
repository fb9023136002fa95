"""Reports: the report model (which owns the exit code) and one module per output format."""
