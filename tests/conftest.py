"""Shared fixtures: the real data beside the checkout (../shared/data)."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# Generated tests (tests/test_generated_inputs.py): no deadline (a command's run time varies with the
# machine's load), failing examples kept in .hypothesis/ beside the tests (git-ignored) and replayed
# first on the next run. `--hypothesis-profile=long` runs ten times as many examples. Under CI the
# examples are derandomized (the same ones on every run, seeded from each test), so the gate fails only
# on a change of the code, never on a newly drawn example; exploring new ones is the local runs' job.
_DATABASE = DirectoryBasedExampleDatabase(str(REPO / ".hypothesis" / "examples"))
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("default", deadline=None, database=_DATABASE, suppress_health_check=_QUIET)
settings.register_profile("long", deadline=None, database=_DATABASE, suppress_health_check=_QUIET)
settings.register_profile("ci", deadline=None, database=None, derandomize=True, suppress_health_check=_QUIET)
if os.environ.get("CI"):
    settings.load_profile("ci")  # --hypothesis-profile=NAME still overrides it


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


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CUDA, skipped where it is not available (run: python -m pytest -m gpu)")
