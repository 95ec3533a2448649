import pytest
import torch


@pytest.fixture(autouse=True, scope='session')
def one_thread():
    r"""The unit tests work on tiny tensors, where extra threads only add
    synchronisation (measured 10-70x slower per op on a busy 2-core box)."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)
