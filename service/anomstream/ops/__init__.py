"""Running it: Prometheus metrics, the HTTP endpoint, logs, the supervisor, the printer, the demo."""
