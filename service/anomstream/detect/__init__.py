"""Pure detection, no Kafka: specs, the detector catalog, thresholds, the key store, the scorer."""
