import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Torch with one thread for every test: its intra-op threads spin while they wait, and two of them on a
    shared 2-core machine stalled small models by up to 500x (a tiny MLP's 200 steps: 53 s against 0.28 s; the
    hybrid inverse-dynamics test ran over 10 min with one core kept busy from another session)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
