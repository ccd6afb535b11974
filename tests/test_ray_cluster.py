"""The Ray cluster path: a real head started as its own process, searches that join it by address.

``ray start --head --block`` runs on 127.0.0.1 at a free port in a session of its own; run_hyper.py
and benchmarks/tune.py (each a separate driver process, as on a cluster) run a 2-trial search through
``--ray_address``; the head is stopped by its own PID and nothing of its session may be left.
"""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests._lead_util import SMALL_RUN, write_tiny_dataset

REPO = Path(__file__).resolve().parent.parent
# `ray start` through this interpreter: the head starts its workers with its own Python, and the
# `ray` script's shebang may name another environment (a copied venv), whose packages would then run.
RAY = [sys.executable, "-m", "ray.scripts.scripts"]
START_SECONDS = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def session_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_head(head, pgid):
    """SIGTERM to the head's own PID (``--block`` shuts its Ray processes down), then, for anything of
    its session still there after 30 s, SIGKILL to that session's process group (ours alone)."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=10)
    deadline = time.time() + 30
    while session_alive(pgid) and time.time() < deadline:
        time.sleep(0.5)
    if session_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
        time.sleep(1)


@pytest.fixture
def ray_head():
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's unix sockets need a short path
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RECBOLE_MMSSL_THREADS": "1"}
    log = open(os.path.join(temp, "head.log"), "w")
    head = subprocess.Popen(
        [*RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--object-store-memory=100000000", f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pgid = head.pid  # start_new_session: the head leads a process group of its own
    try:
        deadline = time.time() + START_SECONDS
        while not listening(port):
            if head.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail(f"the Ray head did not start: {Path(temp, 'head.log').read_text()[-2000:]}")
            time.sleep(1)
        yield f"127.0.0.1:{port}", env
    finally:
        stop_head(head, pgid)
        log.close()
        alive = session_alive(pgid)
        shutil.rmtree(temp, ignore_errors=True)
        assert not alive, "processes of the Ray head's session outlived it"


def run(cmd, env, cwd):
    done = subprocess.run([sys.executable, *cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_trial_searches_through_a_running_ray_head(ray_head, tmp_path):
    address, env = ray_head
    write_tiny_dataset(tmp_path)
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump(SMALL_RUN))
    params = tmp_path / "hyper.test"
    params.write_text("learning_rate choice [0.01,0.001]\n")
    out = tmp_path / "hyper-out"
    run([str(REPO / "run_hyper.py"), "--model=BPR", "--dataset=tiny", f"--data_path={tmp_path}",
         f"--params_file={params}", f"--config_files={fixed}", "--tool=ray", f"--ray_address={address}",
         "--max_evals=2", "--grace_period=1", f"--output_dir={out}"], env, tmp_path)
    best = yaml.safe_load((out / "best.yaml").read_text())
    with open(out / "trials.csv") as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 2 and best["model"] == "BPR" and best["learning_rate"] in (0.01, 0.001)
    assert f"{max(float(t['valid_score']) for t in trials):.4f}" in (out / "best.yaml").read_text().splitlines()[0]

    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "BPR.test").write_text("learning_rate choice [0.01,0.001]\n")
    no_epochs = tmp_path / "no_epochs.yaml"
    no_epochs.write_text(yaml.safe_dump({k: v for k, v in SMALL_RUN.items() if k not in ("epochs", "seed")}))
    run([str(REPO / "benchmarks" / "tune.py"), "--dataset=tiny", f"--data_path={tmp_path}", "--models=BPR",
         "--trials=2", "--epochs=2", f"--spaces={spaces}", f"--out={tmp_path / 'tuning'}",
         f"--config_files={no_epochs}", "--tool=ray", f"--ray_address={address}"], env, tmp_path)
    summary = json.loads((tmp_path / "tuning" / "tiny" / "summary.json").read_text())["BPR"]
    assert summary["trials"] == summary["finished"] == 2 and summary["tool"] == "ray"
    assert yaml.safe_load((tmp_path / "tuning" / "tiny" / "BPR.yaml").read_text()) == summary["values"]
