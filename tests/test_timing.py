"""Tick statistics and decimation of stamped streams."""
import numpy as np

from robot_dyn.timing import Decimator, TickTimer


def test_one_khz_stream_decimated_to_500_hz_is_exactly_every_other_sample():
    d = Decimator(0.002)
    stamps = np.arange(0, 2.0, 0.001) + np.random.default_rng(0).normal(0, 5e-5, 2000)  # jittery 1 kHz
    passed = [t for t in stamps if d.due(t)]
    assert len(passed) == 1000


def test_a_restarted_clock_passes_at_once():
    d = Decimator(0.002)
    assert d.due(5.0) and not d.due(5.001) and d.due(0.0)


def test_tick_timer_percentiles():
    timer = TickTimer(100)
    for k in range(100):
        timer.add(k * 1e-6)
    s = timer.summary("x_")
    assert s["x_count"] == 100 and abs(s["x_us_p50"] - 49.5) < 1e-6 and s["x_us_max"] == 99
