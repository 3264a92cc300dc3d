"""Compiled numeric kernels for the 500 Hz outer loop: numba's njit with the project's settings.

Why numba: the safety filter, its barrier rows and the differential IK work on 7-vectors and a
few dozen rows, where a numpy call costs 1-3 us of dispatch, more than its arithmetic; one tick
made about 150 of them. Written as plain loops and compiled, such a function takes a microsecond
or two. cache=True keeps the machine code beside the module (__pycache__, or numba's user-wide
cache where that is read-only), so a machine compiles each kernel once, about a second each.
error_model="numpy": a division by zero gives inf or nan as in numpy, instead of raising.
"""
from __future__ import annotations

import numba


def kernel(function):
    """Compile `function` (nopython mode, cached, releasing the GIL)."""
    return numba.njit(cache=True, nogil=True, error_model="numpy")(function)
