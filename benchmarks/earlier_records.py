"""An interrupted record that a restarted run has not yet passed stays the run's record.

A run whose ``.last.pth`` is gone (another machine, a cleaned cache) starts over from epoch 0. If that
restart is cut again (time budget, a kill) after fewer epochs than the interrupted record already
there, writing its record over the earlier one would lose the longer run. So compare.py writes such a
run's record beside it (``<run>.json.pending``) and settles afterwards: a finished (or failed) run, or
one that got as far, replaces the earlier record (as a continuation of its own record would), which is
set aside into ``runs/<dataset>/superseded/`` (never deleted); a shorter cut keeps the earlier record,
and its ``.last.pth`` continues next time.
"""

import json
import os

from benchmarks.stale_runs import set_aside

PENDING = ".pending"


def earlier_record_further_along(out, resume):
    """The interrupted record at ``out`` if it trained more epochs than this call continues from
    (``resume``, as compare.resumable gives it; None for a start from epoch 0), else None."""
    if not os.path.exists(out):
        return None
    with open(out) as f:
        record = json.load(f)
    if record.get("status") != "interrupted":
        return None
    continues_from = resume["epoch"] if resume else 0
    return record if record.get("n_epochs", 0) > continues_from else None


def settle(out, earlier, runs_dir):
    """After a run that wrote its record to ``out + PENDING``: the record that stands at ``out`` and a
    line saying what happened. (A run that wrote nothing never gets here: ``earlier`` stays as it is.)"""
    pending = out + PENDING
    with open(pending) as f:
        new = json.load(f)
    if new["status"] == "interrupted" and new["n_epochs"] < earlier["n_epochs"]:  # as far: the run continues
        os.unlink(pending)  # this call's own output; the run's .last.pth holds all of it
        return earlier, (f"kept the earlier interrupted record ({earlier['n_epochs']} epochs) over this restart's "
                         f"{new['n_epochs']}; the same command continues the restart")
    moved = set_aside([out], runs_dir)
    os.replace(pending, out)
    return new, (f"replaces the earlier interrupted record ({earlier['n_epochs']} epochs), set aside "
                 f"({', '.join(moved)})")
