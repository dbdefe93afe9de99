"""Shared fixtures."""
import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread: small ops are much faster on a busy 2-core CPU than with two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
