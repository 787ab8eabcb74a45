"""mcuprof profiler_client."""
