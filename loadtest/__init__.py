"""Load generator and benchmark harness for anomstream (``python -m loadtest run --profile quick``).

Every speed is reported next to a baseline measured in the same run (the Kafka/codec ceiling and raw
River), so results stay comparable on noisy, shared machines.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
RESULTS = HERE / "results"
