"""Fixtures shared by the test modules."""

import socket

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


@pytest.fixture
def no_network(monkeypatch):
    """No hub, no sockets: hub lookups are off and sockets refuse to connect, so whatever the test builds and
    loads must work offline (use with ``pytestmark = pytest.mark.usefixtures("no_network")``)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in sdlab's tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
