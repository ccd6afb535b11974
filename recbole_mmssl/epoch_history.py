"""Each validated epoch's score and seconds, kept in every checkpoint of a run.

A continued run (``--resume``, benchmarks/compare.py, the kept trials of benchmarks/tune.py) learns the
epochs trained before it from its checkpoint alone, so its curve, best epoch, epoch count and time are
those of the whole run, not of the last process; nobody has to read them back from a log.

Checkpoints written before the history was kept (and a best-epoch file, saved before its own epoch is
recorded) lack some epochs: those come back with an unknown score (NaN), except the best epoch, whose
score the checkpoint holds and whose place RecBole's ``cur_step`` gives.
"""

import math
import time


class EpochHistory:
    """Entries ``{"epoch", "valid_score", "train_seconds", "wall_seconds"}``, one per validated epoch.

    ``train_seconds`` is the epoch's training alone (validation excluded); ``wall_seconds`` the time since
    the previous entry, or since this process began training for its first epoch.
    """

    def __init__(self, entries=()):
        self.entries = [dict(e) for e in entries]
        self._clock = None
        self._train_seconds = None

    @classmethod
    def from_checkpoint(cls, state):
        """The history of the epochs a checkpoint has trained (see the module docstring for gaps)."""
        done = int(state["epoch"]) + 1
        eval_step = int((state.get("config") or {}).get("eval_step") or 1)
        known = {int(e["epoch"]): e for e in state.get("history") or () if int(e["epoch"]) < done}
        best = done - 1 - int(state.get("cur_step") or 0) * eval_step
        for epoch in range(eval_step - 1, done, eval_step):
            if epoch not in known:
                score = float(state["best_valid_score"]) if epoch == best else math.nan
                known[epoch] = {"epoch": epoch, "valid_score": score, "train_seconds": None, "wall_seconds": None}
        return cls(known[e] for e in sorted(known))

    def start(self):
        """Training begins in this process: the first entry's wall clock starts here."""
        self._clock = time.time()

    def timed(self, train_epoch):
        """``train_epoch`` (a trainer's bound ``_train_epoch``) timing itself for the next entry."""

        def timed_train_epoch(*args, **kwargs):
            started = time.time()
            try:
                return train_epoch(*args, **kwargs)
            finally:
                self._train_seconds = time.time() - started

        return timed_train_epoch

    def record(self, epoch_idx, valid_score):
        """One validated epoch (an epoch trained again after a stop replaces its earlier entry)."""
        now = time.time()
        wall = None if self._clock is None else round(now - self._clock, 3)
        self._clock = now
        self.entries = [e for e in self.entries if e["epoch"] < epoch_idx]
        self.entries.append({"epoch": int(epoch_idx), "valid_score": float(valid_score),
                             "train_seconds": self._train_seconds, "wall_seconds": wall})
        self._train_seconds = None

    def wall_seconds(self):
        """Seconds the recorded epochs took (those of checkpoints that lack them count 0)."""
        return sum(e["wall_seconds"] or 0 for e in self.entries)
