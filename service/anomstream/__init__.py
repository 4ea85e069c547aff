"""anomstream: real-time anomaly detection on Apache Kafka with River online models."""

__version__ = "0.1.0"
