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


@pytest.fixture
def no_download(monkeypatch):
    r"""Fails a test that would download a LightGCN dataset file."""
    import pyg_lightgode.datasets.lightgcn as lightgcn_module

    def fail(url, folder, *args, **kwargs):
        raise AssertionError(f'unexpected download of {url}')

    monkeypatch.setattr(lightgcn_module, 'download_url', fail)


# Fixtures that start processes: a test using one is an end-to-end run.
PROCESS_FIXTURES = {'two_process_run'}


def pytest_collection_modifyitems(items):
    r"""Marks the tests that start processes (the 2-rank DDP runs of
    test_distributed.py) as :obj:`slow`, like the example and benchmark
    runs, which carry the marker themselves."""
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.slow)
