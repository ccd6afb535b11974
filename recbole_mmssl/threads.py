"""The process's CPU thread policy, decided once at start and logged (issue 15).

Why: MMSSL's training loop alternates torch's OpenMP parallel regions with numpy/OpenBLAS products
(the critic penalty's symmetric rank-k update). Both libraries keep worker threads that spin-wait
between parallel regions. On an idle machine that is the fastest way to hand work over; as soon as
another process wants a core, the spinning workers take the CPU time that the thread doing the real
work needs, and every parallel region waits for its slowest thread: one background job made the
earlier default 16x slower. The policy here keeps idle workers from spinning and sizes the pools from
the CPUs this process may run on (its affinity mask), not the machine's count.

``RECBOLE_MMSSL_THREADS`` (environment, read once):
  unset / ``auto``  the default: threads = CPUs in this process's affinity mask, passive waiting;
  ``N`` (integer)   N threads for torch and numpy's BLAS, passive waiting;
  ``legacy``        the behaviour before this module: library defaults, spin-waiting workers.
Explicit ``OMP_NUM_THREADS`` / ``OMP_WAIT_POLICY`` / ``OPENBLAS_THREAD_TIMEOUT`` set by the user win.

Wait policies are read by libgomp and OpenBLAS when they load, so :func:`prepare_environment` must
run before torch or numpy is imported; ``recbole_mmssl/__init__.py`` calls it, and :func:`describe`
says whether it was in time. :func:`apply` (thread counts) may run any time before training.
"""

import os
import sys

ENV = "RECBOLE_MMSSL_THREADS"
#: OpenBLAS: workers sleep after 2^4 cycles of waiting instead of its default 2^28 (~0.1 s).
OPENBLAS_TIMEOUT = "4"

_state = {"early": None, "applied": None}


def _setting():
    return os.environ.get(ENV, "auto").strip().lower() or "auto"


def available_cpus():
    """CPUs this process may run on (affinity mask; cgroup-free fallback: os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _count(setting):
    if setting in ("auto", "legacy"):
        return available_cpus()
    try:
        n = int(setting)
    except ValueError:
        raise ValueError(f"{ENV}={setting!r}: expected auto, legacy or a positive integer") from None
    if n < 1:
        raise ValueError(f"{ENV}={setting!r}: expected auto, legacy or a positive integer")
    return n


def prepare_environment():
    """Set the wait policies (and, for an explicit N, the pool sizes) before torch/numpy load them."""
    if _state["early"] is not None:
        return
    setting = _setting()
    loaded = [name for name in ("torch", "numpy") if name in sys.modules]
    _state["early"] = {"setting": setting, "too_late_for": loaded}
    if setting == "legacy":
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_TIMEOUT)
    if setting != "auto":
        n = str(_count(setting))
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, n)


def apply():
    """Size torch's and numpy's BLAS pools for this process; idempotent; returns :func:`describe`."""
    import torch
    from threadpoolctl import threadpool_limits

    prepare_environment()
    setting = _state["early"]["setting"]
    if setting == "legacy":
        n = torch.get_num_threads()
    else:
        n = int(os.environ.get("OMP_NUM_THREADS", _count(setting)))
        torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")
    _state["applied"] = n
    return describe()


def describe():
    """One line for the run's log: the policy in force and whether it came in time."""
    import torch

    early = _state["early"] or {"setting": _setting(), "too_late_for": ["torch", "numpy"]}
    wait = os.environ.get("OMP_WAIT_POLICY", "library default (spin)")
    late = early["too_late_for"]
    text = (f"threads: {torch.get_num_threads()} torch / numpy BLAS (policy {early['setting']}, "
            f"{available_cpus()} CPUs available), OpenMP wait {wait}, "
            f"OpenBLAS timeout {os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'default')}")
    if late and early["setting"] != "legacy":
        text += f" [wait policy not applied: {', '.join(late)} was imported before recbole_mmssl]"
    return text
