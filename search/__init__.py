"""mcuprof search."""
