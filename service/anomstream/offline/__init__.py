"""Files, not Kafka: sources, outputs, replay, backtest, evaluate, report, and the NAB / point scorers."""
