"""The process's CPU thread policy, decided once at the start of a run and logged.

Why: torch's OpenMP workers spin-wait between parallel regions, and so do numpy's OpenBLAS workers
(the critic penalty's symmetric products, or every critic product where ``critic_matmul`` picks
numpy). Alone on the machine that is the fastest hand-over. Beside another busy process it is a trap:
a parallel region waits for its slowest thread, the thread that shares a core with the other process
runs at half speed, and its spinning partner keeps the scheduler from moving the other process away.
Measured on the 2-core machine of results/speed_under_load.md: two spinning threads beside one
nice-0 busy process ran MMSSL 2.8x slower than idle (ml-100k 5-6x) and slower than one thread.
Passive waiting fixes that but costs 30-40% when idle. So the policy is:

- **threads from what is free at start**: the CPUs this process may use (its affinity mask), minus
  the CPUs other processes keep busy at normal priority, sampled from /proc/stat over ``SAMPLE_S``
  (time of niced processes is not counted: the scheduler gives way to us there). At least 1.
- **short spins**: OpenBLAS workers sleep after 2^4 cycles instead of its default 2^28 (~0.1 s,
  yielding the CPU around rather than releasing it); OpenMP keeps its library default.

``RECBOLE_MMSSL_THREADS`` (environment) overrides: ``N`` (integer) pins N threads (exactly
repeatable numerics whatever the load: thread counts change float summation order), ``legacy`` is the
behaviour before this module (library defaults everywhere). An explicit ``OMP_NUM_THREADS`` also pins.
The wait settings are read by the libraries when they load, so :func:`prepare_environment` runs when
``recbole_mmssl`` is imported (before torch/numpy when a command starts); :func:`apply` sizes the pools
at the start of a run (``quick_start.build``) and returns the line the run logs.
"""

import os
import sys
import time

ENV = "RECBOLE_MMSSL_THREADS"
#: OpenBLAS: workers sleep after 2^4 cycles of waiting (its minimum) instead of 2^28.
OPENBLAS_TIMEOUT = "4"
#: Seconds of /proc/stat sampling to see how many CPUs other processes keep busy.
SAMPLE_S = 0.3

_state = {"early": None, "decision": None}


def _setting():
    return os.environ.get(ENV, "auto").strip().lower() or "auto"


def available_cpus():
    """CPUs this process may run on (its affinity mask), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _pinned(setting):
    """The thread count the user pinned (RECBOLE_MMSSL_THREADS=N or OMP_NUM_THREADS), else None."""
    if setting not in ("auto", "legacy"):
        try:
            n = int(setting)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"{ENV}={setting!r}: expected auto, legacy or a positive integer")
        return n
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(omp) if omp.isdigit() and int(omp) > 0 else None


def prepare_environment():
    """Library wait settings (and a pinned pool size) before torch/numpy load them; idempotent."""
    if _state["early"] is not None:
        return
    setting = _setting()
    _state["early"] = {"setting": setting, "late": [m for m in ("torch", "numpy") if m in sys.modules]}
    if setting == "legacy":
        return
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_TIMEOUT)
    pinned = _pinned(setting)
    if pinned:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(pinned))


def _cpu_jiffies():
    """(busy jiffies of the whole machine at normal priority, this process's own jiffies)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, _nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    steal = int(fields[7]) if len(fields) > 7 else 0
    with open(f"/proc/{os.getpid()}/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return user + system + irq + softirq + steal, int(own[11]) + int(own[12])  # utime + stime


def busy_cpus(seconds=SAMPLE_S):
    """CPUs that other processes kept busy at normal priority over ``seconds`` (0 where unknown)."""
    try:
        busy0, own0 = _cpu_jiffies()
        time.sleep(seconds)
        busy1, own1 = _cpu_jiffies()
    except (OSError, ValueError, IndexError):
        return 0.0
    hertz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / hertz / seconds)


def decide():
    """(thread count, reason): pinned, legacy, or free CPUs at start."""
    setting = _setting()
    pinned = _pinned(setting)
    if pinned:
        return pinned, f"pinned by {ENV if setting not in ('auto', 'legacy') else 'OMP_NUM_THREADS'}"
    cpus = available_cpus()
    if setting == "legacy":
        return cpus, "legacy (library defaults)"
    busy = busy_cpus()
    n = max(1, cpus - int(round(busy)))
    return n, f"{cpus} CPUs available, {busy:.1f} kept busy by other processes at start"


def apply():
    """Size torch's and numpy's BLAS pools once for this process; returns :func:`describe`."""
    import torch
    from threadpoolctl import threadpool_limits

    prepare_environment()
    if _state["decision"] is None:
        _state["decision"] = decide()
    n, _ = _state["decision"]
    if _state["early"]["setting"] != "legacy":
        torch.set_num_threads(n)
    threadpool_limits(limits=torch.get_num_threads(), user_api="blas")
    return describe()


def describe():
    """One line for the run's log: threads, why, and the wait settings in force."""
    import torch

    early = _state["early"] or {"setting": _setting(), "late": ["torch", "numpy"]}
    n, reason = _state["decision"] or (torch.get_num_threads(), "not decided yet")
    text = (f"CPU threads: {torch.get_num_threads()} for torch and numpy's BLAS ({reason}); OpenBLAS "
            f"wait timeout {os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'library default')}, OpenMP wait "
            f"{os.environ.get('OMP_WAIT_POLICY', 'library default')}; set {ENV}=N to pin")
    if early["late"] and early["setting"] != "legacy":
        text += f" [wait settings not applied: {', '.join(early['late'])} was imported before recbole_mmssl]"
    return text
