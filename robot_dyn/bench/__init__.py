"""Benchmarks behind `robot-dyn bench ...`: each prints one JSON object with ratios to a
baseline measured in the same run (these machines are noisy)."""
