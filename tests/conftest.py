"""Fixtures shared by the test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: fast on a shared 2-core machine, and the same arithmetic as the
    subprocesses and the one-CPU Ray workers (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    """A tiny random-weight SD 1.x model on the CPU (plumbing tests)."""
    from sdlab.testing import tiny_model

    return tiny_model("sd1", seed=0)
