"""The Kafka side: client factories, the worker loop, the producer wrapper, checkpoints and dead letters."""
