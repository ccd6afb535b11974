"""SIGTERM and a full disk stop a command as Ctrl-C does: no traceback, no half-written or temporary
file, no empty checkpoint, and the command that continues the run when there is one."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recbole.trainer import Trainer

import run_recbole_mmssl as runner
from recbole_mmssl import checkpoint
from recbole_mmssl.checkpoint import load_checkpoint
from recbole_mmssl.data import atomic_io, convert
from tests._data_util import features, folder_snapshot, make_hkuds
from tests._lead_util import write_tiny_dataset

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tiny_dataset(tmp_path)
    return tmp_path


def _argv(root, *extra):
    return [f"--data_path={root}", f"--checkpoint_dir={root / 'saved'}", "--model=BPR", "--dataset=tiny",
            "--benchmark_filename=['train','valid','test']", "--load_col={'inter':['user_id','item_id']}",
            "--state=WARNING", "--show_progress=False", *extra]


def _leftovers(folder):
    return sorted(p.name for p in Path(folder).rglob("*") if p.name.endswith(".tmp") or
                  (p.suffix == ".pth" and p.stat().st_size == 0))


def test_sigterm_in_the_first_epoch_exits_143_and_leaves_no_empty_checkpoint(data, monkeypatch, capsys, caplog):
    train_epoch = Trainer._train_epoch
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or Ray's handler once an earlier test ran ray.init

    def terminated_during(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would, while the epoch runs
        return train_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", terminated_during)
    with caplog.at_level("WARNING"):
        code = runner.main(_argv(data, "--epochs=3"))
    assert code == 143
    assert "Terminated (SIGTERM) before the first epoch was saved" in caplog.text
    assert "Traceback" not in capsys.readouterr().err
    assert not list((data / "saved").glob("*.pth")) and _leftovers(data) == []
    assert signal.getsignal(signal.SIGTERM) is before  # the command's handler is gone again


def test_a_full_disk_while_saving_keeps_the_last_epoch_and_says_how_to_continue(data, monkeypatch, capsys, caplog):
    saves, real_save = [], checkpoint.torch.save

    def save(state, f):
        saves.append(state["epoch"])
        if state["epoch"] == 1:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(state, f)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with caplog.at_level("WARNING"):
        code = runner.main(_argv(data, "--epochs=3"))
    err = capsys.readouterr().err
    (last,) = (data / "saved").glob("*.last.pth")
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")][0].startswith(f"error: {data / 'saved'}")
    assert "continue with: python run_recbole_mmssl.py" in caplog.text and f"--resume={last}" in caplog.text
    assert load_checkpoint(last)["epoch"] == 0 and _leftovers(data) == []


def test_a_full_disk_during_conversion_keeps_the_earlier_dataset(tmp_path, monkeypatch, capsys):
    src = make_hkuds(tmp_path / "src", feats={"image": features()})
    argv = ["hkuds", src, "--name", "toy", "--out", str(tmp_path / "out"), "--no-progress"]
    assert convert.main(argv) == 0
    before = folder_snapshot(tmp_path / "out")

    def disk_full(block):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_io, "format_float_rows", disk_full)
    np_src = make_hkuds(tmp_path / "src2", feats={"image": features(seed=4)})
    code = convert.main(["hkuds", np_src, *argv[2:]])
    err = capsys.readouterr().err
    assert code == 2 and "toy.image_feat: No space left on device" in err and "Traceback" not in err
    assert folder_snapshot(tmp_path / "out") == before and os.listdir(tmp_path / "out") == ["toy"]


def test_sigterm_after_an_epoch_in_a_real_process_prints_the_continue_command(data):
    args = [REPO / "run_recbole_mmssl.py", *_argv(data, "--epochs=500", "--stopping_step=500")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=data)
    deadline = time.time() + 90
    while not list((data / "saved").glob("*.last.pth")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    (last,) = (data / "saved").glob("*.last.pth")
    assert proc.returncode == 143, err
    assert "Traceback" not in out + err and err.count("Terminated (SIGTERM). The last finished epoch") == 1
    assert f"--resume={last}" in err and _leftovers(data) == []
