"""Shared fixtures: the real data beside the checkout (../shared/data)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir():
    """../shared/data; missing data fails loudly in CI (never a silent skip)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing: CI needs the shared data beside the checkout.")
        pytest.skip(f"{SHARED_DATA} not present on this machine")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread for the whole suite: the models here are tiny, and on a 2-core shared
    machine two OpenMP threads spin on them (the suite ran 404 s with 2 threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
