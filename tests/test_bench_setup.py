"""The benchmarks measure what they claim (no timing is asserted here)."""
from robot_dyn.bench.control import inner_tick


def test_inner_tick_benchmark_times_the_tracking_law():
    # raises if the layer refuses the benchmark's reference (it would then time hold mode)
    result = inner_tick("panda", 200)
    assert result["layer_mode"] == "track"
    assert result["inner_tick_us_p50"] > 0 and result["inner_vs_bare_law_p50"] > 0
