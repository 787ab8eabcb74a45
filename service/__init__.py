"""mcuprof service."""
