"""keep_freed_memory: a freed large block is reused, not page-faulted again (glibc)."""

import resource

import pytest
import torch

from recbole_mmssl import allocator


def _faults_touching(n_bytes):
    """Minor page faults while allocating, writing and freeing one n_bytes block."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(n_bytes, dtype=torch.uint8)  # (numpy would ask for huge pages)
    block[::4096] = 1
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(allocator._glibc() is None, reason="the C library is not glibc")
def test_freed_blocks_are_reused_after_keep_freed_memory():
    size = 48 * 2**20  # above glibc's largest dynamic mmap threshold (32 MiB): always mmapped by default
    assert _faults_touching(size) > size // 4096 // 2  # default: a fresh mapping faults every page
    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True  # idempotent
    _faults_touching(size)  # grows the heap once
    assert _faults_touching(size) < size // 4096 // 10
