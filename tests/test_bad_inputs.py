"""Bad input to every command, table-driven.

Each case feeds one command one bad input built on tiny data and checks what a user sees: exit code
2, an ``error:`` line naming the file or key, a ``fix:`` line, no traceback, and every output that
existed before (a converted dataset, a feature file, checkpoints, recommendations, a search's
best.yaml) byte-identical afterwards. The commands run in-process through their ``main(argv)`` (the
same path as the console: ``run_cli`` around the command); a few run as real processes to check the
entry points themselves and Ctrl-C.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

import run_recbole_mmssl as runner
from recbole_mmssl import cli, hyper, recommend
from recbole_mmssl.checkpoint import last_checkpoint_path, load_checkpoint
from recbole_mmssl.config import Config
from recbole_mmssl.data import convert, features
from recbole_mmssl.data.atomic_io import TEMP_MARKER, make_temp_dir, write_feature_file
from recbole_mmssl.errors import ConfigError
from recbole_mmssl.quick_start import run_recbole_mmssl
from tests._data_util import features as random_features
from tests._data_util import damage_tensors, folder_snapshot, make_hkuds, make_mmrec
from tests._lead_util import SMALL_RUN, write_tiny_dataset

REPO = Path(__file__).resolve().parent.parent
COMMANDS = {"convert": convert.main, "features": features.main, "run": runner.main,
            "recommend": recommend.main, "hyper": hyper.main}
WATCHED = ("out", "feat", "saved", "recs", "hyper")  # pre-existing outputs of every kind


def build_world(root):
    """Good inputs and pre-existing outputs of every command, built once for the module."""
    root = Path(root)
    w = SimpleNamespace(root=root, cwd=root / "cwd")
    w.cwd.mkdir()
    w.src = make_hkuds(root / "src", feats={"image": random_features()})
    w.out = root / "out"
    convert.convert("hkuds", w.src, "toy", w.out, progress=False)
    w.data, w.data2 = root / "data", root / "data2"
    write_tiny_dataset(w.data)
    write_tiny_dataset(w.data, name="tiny2", seed=1)
    write_tiny_dataset(w.data, name="few", n_items=30)
    write_tiny_dataset(w.data2, seed=2)  # same name as tiny, other interactions and features
    holes = write_tiny_dataset(w.data, name="holes") / "holes.valid.inter"  # one empty user id
    lines = holes.read_text().splitlines()
    holes.write_text("\n".join(lines[:3] + ["\t" + lines[3].split("\t")[1]] + lines[4:]) + "\n")
    w.base = root / "base.yaml"
    w.base.write_text(yaml.safe_dump({k: v for k, v in SMALL_RUN.items() if k != "epochs"} | {"epochs": 1}))
    w.saved = root / "saved"
    result = run_recbole_mmssl("BPR", "tiny", config_file_list=[str(w.base)],
                               config_dict={"data_path": str(w.data), "checkpoint_dir": str(w.saved)})
    w.ckpt = Path(result["saved_model_file"])
    w.last = Path(last_checkpoint_path(str(w.ckpt)))
    w.damaged = root / "damaged.last.pth"
    damage_tensors(w.last, w.damaged)
    w.feat = root / "feat"
    w.feat.mkdir()
    write_feature_file(str(w.feat / "toy.text_feat"), ["a", "b"], np.ones((2, 3), np.float32), "text", progress=False)
    w.recs = root / "recs"
    w.recs.mkdir()
    (w.recs / "recs.csv").write_text("user_id,rank,item_id,score\nu1,1,i1,0.5\n")
    w.hyper = root / "hyper"
    w.hyper.mkdir()
    (w.hyper / "best.yaml").write_text("learning_rate: 0.01\n")
    w.params = root / "hyper.test"
    w.params.write_text("learning_rate choice [0.01,0.001]\n")
    w.empty_pth = root / "empty.pth"
    w.empty_pth.write_bytes(b"")
    w.text_pth = root / "notes.pth"
    w.text_pth.write_text("not a checkpoint\n")
    return w


def snapshot(w):
    return {name: folder_snapshot(getattr(w, name)) for name in WATCHED}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    before = os.getcwd()
    os.chdir(root)  # RecBole writes log/ and log_tensorboard/ into the working directory
    try:
        yield build_world(root)
    finally:
        os.chdir(before)


# ----------------------------------------------------------------------------- case builders

def _convert(src, *extra, w):
    return ["hkuds", str(src), "--name", "toy", "--out", str(w.out), "--no-progress", *extra]


def _hkuds(t, **kwargs):
    kwargs.setdefault("feats", {"image": random_features()})
    return make_hkuds(t / "src", **kwargs)


def _hkuds_file(t, name, data):
    """A good HKUDS folder with one file replaced by ``data`` (bytes)."""
    src = _hkuds(t)
    Path(src, name).write_bytes(data)
    return src


def _npy(t, array):
    src = make_hkuds(t / "src")
    np.save(os.path.join(src, "image_feat.npy"), array)
    return src


def _npz(t):
    src = make_hkuds(t / "src")
    with open(os.path.join(src, "image_feat.npy"), "wb") as f:
        np.savez(f, features=random_features())
    return src


def _rewrite(path, data):
    Path(path).write_bytes(data)
    return path


def _mmrec(t, rows, raw=None):
    src = make_mmrec(t / "m", "x", rows)
    if raw is not None:
        _rewrite(os.path.join(src, "x.inter"), raw)
    return ["mmrec", src, "--name", "x"]


def _features(inp, w, *extra, out=None):
    return ["text", "--input", str(inp), "--id-column", "id", "--text-column", "title",
            "--out", str(out or w.feat / "toy.text_feat"), "--no-progress", *extra]


def _csv(t, data):
    path = t / "items.csv"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _run(w, *extra, dataset="tiny", model="BPR", config_files=None, data=None, saved=None):
    files = ",".join([str(w.base)] + [str(f) for f in (config_files or [])])
    return [f"--config_files={files}", f"--data_path={data or w.data}", f"--checkpoint_dir={saved or w.saved}",
            f"--model={model}", f"--dataset={dataset}", *extra]


def _atomic(t, mutate):
    """A copy of the tiny dataset named ``bad`` under ``t`` whose test split's lines are ``mutate(lines)``;
    returns the dataset name (pass ``data=t``)."""
    folder = write_tiny_dataset(t, name="bad")
    path = folder / "bad.test.inter"
    path.write_text("\n".join(mutate(path.read_text().splitlines())) + "\n")
    return "bad"


def _yaml(t, text, name="extra.yaml"):
    path = t / name
    path.write_text(text)
    return path


def _with(argv, extra):
    """``argv`` with the options of ``extra`` replacing those of the same name (an option given twice is
    an error of its own), the others appended."""
    names = {str(e).split("=")[0] for e in extra}
    return [a for a in argv if str(a).split("=")[0] not in names] + list(extra)


def _recommend(w, *extra, checkpoint=None, out=None):
    return _with([f"--checkpoint={checkpoint or w.ckpt}", f"--out={out or w.recs / 'recs.csv'}", "--topk=5"], extra)


def _hyper(w, params, *extra):
    return _with(["--model=BPR", "--dataset=tiny", f"--data_path={w.data}", f"--config_files={w.base}",
                  f"--params_file={params}", "--tool=hyperopt", "--max_evals=1", f"--output_dir={w.hyper}"], extra)


def _params(t, text):
    path = t / "hyper.test"
    path.write_text(text)
    return path


def _free_port():
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _no_write_access(target):
    """Setup: ``target`` looks read-only to the checks (tests run as root, for whom chmod does not)."""
    def setup(monkeypatch, w, t):
        real = os.access
        path = os.path.realpath(str(target(w, t)))
        monkeypatch.setattr(cli.os, "access", lambda p, mode: real(p, mode) and os.path.realpath(p) != path)
    return setup


def _folder_at(where):
    """Setup: a folder of the user's, holding one file, where the command will write."""
    def setup(monkeypatch, w, t):
        folder = where(w, t)
        folder.mkdir(exist_ok=True)
        (folder / "mine.txt").write_text("mine\n")
    return setup


CUDA = "cuda:99" if torch.cuda.is_available() else "cuda"

# (id, command, argv builder (w, tmp) -> argv, text the first error line must hold (w, tmp) -> str, setup)
CASES = [
    # --- python -m recbole_mmssl.data.convert
    ("convert-name-slash", "convert", lambda w, t: ["hkuds", w.src, "--name", "a/b", "--out", str(w.out)],
     lambda w, t: "--name=a/b", None),
    ("convert-name-dot", "convert", lambda w, t: ["hkuds", w.src, "--name", ".", "--out", str(w.out)],
     lambda w, t: "--name=.", None),
    ("convert-name-dotdot", "convert", lambda w, t: ["hkuds", w.src, "--name", "..", "--out", str(w.out)],
     lambda w, t: "--name=..", None),
    ("convert-name-empty", "convert", lambda w, t: ["hkuds", w.src, "--name", "", "--out", str(w.out)],
     lambda w, t: "--name", None),
    ("convert-out-is-a-file", "convert",
     lambda w, t: ["hkuds", w.src, "--name", "toy", "--out", str(w.base)], lambda w, t: str(w.base), None),
    ("convert-out-under-a-file", "convert",
     lambda w, t: ["hkuds", w.src, "--name", "toy", "--out", str(w.base / "sub")], lambda w, t: "which is a file",
     None),
    ("convert-out-read-only", "convert", lambda w, t: _convert(w.src, w=w), lambda w, t: "permission denied",
     _no_write_access(lambda w, t: w.out)),
    ("convert-src-missing", "convert", lambda w, t: _convert(t / "nowhere", w=w), lambda w, t: str(t / "nowhere"),
     None),
    ("convert-item-id-2**63", "convert", lambda w, t: _convert(_hkuds(t, train={"0": [0, 2**63]}), w=w),
     lambda w, t: "train.json", None),
    ("convert-json-not-utf8", "convert",
     lambda w, t: _convert(_hkuds_file(t, "val.json", b'{"\xe9t\xe9": [1]}'), w=w),
     lambda w, t: "val.json", None),
    ("convert-empty-user-id", "convert", lambda w, t: _convert(_hkuds(t, train={"": [0], "0": [1, 2]}), w=w),
     lambda w, t: "train.json", None),
    ("convert-user-id-NA", "convert", lambda w, t: _convert(_hkuds(t, train={"NA": [0], "0": [1, 2]}), w=w),
     lambda w, t: "train.json", None),
    ("convert-json-duplicate-user", "convert",
     lambda w, t: _convert(_hkuds_file(t, "train.json", b'{"0": [0, 1, 2], "1": [3], "0": [4]}'), w=w),
     lambda w, t: "train.json: user '0' appears twice", None),
    ("convert-npy-named-like-no-modality", "convert",
     lambda w, t: _convert(_hkuds_file(t, "Copy of image_feat.npy", b"x"), w=w),
     lambda w, t: "Copy of image_feat.npy: modality name 'Copy of image' is not a plain name", None),
    ("convert-npz-archive-named-npy", "convert", lambda w, t: _convert(_npz(t), w=w),
     lambda w, t: "image_feat.npy: is an .npz archive", None),
    ("convert-npy-zero-bytes", "convert",
     lambda w, t: _convert(_hkuds_file(t, "image_feat.npy", b""), w=w),
     lambda w, t: "image_feat.npy", None),
    ("convert-npy-strings", "convert",
     lambda w, t: _convert(_npy(t, np.full((6, 2), "1.5")), w=w), lambda w, t: "image_feat.npy", None),
    ("convert-npy-complex", "convert",
     lambda w, t: _convert(_npy(t, random_features().astype(np.complex64)), w=w), lambda w, t: "image_feat.npy",
     None),
    ("convert-npy-no-columns", "convert",
     lambda w, t: _convert(_npy(t, np.zeros((6, 0), np.float32)), w=w), lambda w, t: "image_feat.npy", None),
    ("convert-mmrec-header-only", "convert",
     lambda w, t: _mmrec(t, []) + ["--out", str(w.out)], lambda w, t: "x.inter", None),
    ("convert-mmrec-not-utf8", "convert",
     lambda w, t: _mmrec(t, [], raw=b"userID\titemID\tx_label\n\xff\xfe\t1\t0\n") + ["--out", str(w.out)],
     lambda w, t: "x.inter", None),
    ("convert-mmrec-item-id-too-large", "convert",
     lambda w, t: _mmrec(t, [(0, 2**60, 0), (0, 1, 1), (1, 1, 2)]) + ["--out", str(w.out)],
     lambda w, t: "x.inter", None),
    ("convert-missing-option", "convert", lambda w, t: ["hkuds", w.src], lambda w, t: "--name", None),
    ("convert-source-sits-at-out-name", "convert",
     lambda w, t: ["hkuds", _hkuds(t / "out"), "--name", "src", "--out", t / "out"],
     lambda w, t: "is the source folder SRC", None),
    ("convert-into-a-folder-it-did-not-make", "convert", lambda w, t: _convert(w.src, w=SimpleNamespace(out=t)),
     lambda w, t: "holds files the converter did not write (mine.txt)", _folder_at(lambda w, t: t / "toy")),
    # --- python -m recbole_mmssl.data.features
    ("features-id-with-tab", "features", lambda w, t: _features(_csv(t, 'id,title\n"a\tb",x\n2,y\n'), w),
     lambda w, t: "items.csv", None),
    ("features-empty-id", "features", lambda w, t: _features(_csv(t, "id,title\n,x\n2,y\n"), w),
     lambda w, t: "items.csv", None),
    ("features-header-only", "features", lambda w, t: _features(_csv(t, "id,title\n"), w),
     lambda w, t: "items.csv", None),
    ("features-not-utf8", "features", lambda w, t: _features(_csv(t, b"id,title\n1,caf\xe9\n"), w),
     lambda w, t: "items.csv", None),
    ("features-input-missing", "features", lambda w, t: _features(t / "none.csv", w),
     lambda w, t: "none.csv", None),
    ("features-out-is-a-folder", "features", lambda w, t: _features(_csv(t, "id,title\n1,x\n"), w, out=w.feat),
     lambda w, t: str(w.feat), None),
    ("features-out-under-a-file", "features",
     lambda w, t: _features(_csv(t, "id,title\n1,x\n"), w, out=w.feat / "toy.text_feat" / "x.text_feat"),
     lambda w, t: f"{w.feat / 'toy.text_feat'}: the folder of --out is a file", None),
    ("features-out-is-the-input", "features",
     lambda w, t: _features(_csv(t, "id,title\n1,x\n"), w, out=t / "items.csv"),
     lambda w, t: "--out is the same file as --input", None),
    ("features-header-repeats-a-column", "features", lambda w, t: _features(_csv(t, "id,title,title\n1,x,y\n"), w),
     lambda w, t: "items.csv line 1: the header names column 'title' twice", None),
    ("features-model-not-a-model", "features",
     lambda w, t: _features(_csv(t, "id,title\n1,x\n"), w, f"--model={w.hyper}"),
     lambda w, t: f"{w.hyper}: is not a model folder", None),
    ("features-modality-not-a-name", "features",
     lambda w, t: _features(_csv(t, "id,title\n1,x\n"), w, "--modality=my text", out=t / "x.feat"),
     lambda w, t: "modality name 'my text' is not a plain name", None),
    ("features-batch-size-0", "features", lambda w, t: _features(_csv(t, "id,title\n1,x\n"), w, "--batch-size=0"),
     lambda w, t: "--batch-size", None),
    # --- python run_recbole_mmssl.py
    ("run-misspelled-key", "run", lambda w, t: _run(w, "--learning_rat=0.1"), lambda w, t: "`learning_rat`", None),
    ("run-epoch-for-epochs", "run", lambda w, t: _run(w, "--epoch=5"), lambda w, t: "`epoch`", None),
    ("run-learning-rate-abc", "run", lambda w, t: _run(w, "--learning_rate=abc"),
     lambda w, t: "`learning_rate` (command line --learning_rate=abc): expected a number > 0", None),
    ("run-config-file-missing", "run", lambda w, t: _run(w, config_files=[t / "none.yaml"]),
     lambda w, t: str(t / "none.yaml"), None),
    ("run-config-file-yaml-error", "run",
     lambda w, t: _run(w, config_files=[_yaml(t, "epochs: 2\ntopk: [10,\n")]), lambda w, t: "extra.yaml line", None),
    ("run-config-file-misspelled-key", "run",
     lambda w, t: _run(w, config_files=[_yaml(t, "epochs: 2\n\nlearnig_rate: 0.1\n")]),
     lambda w, t: "`learnig_rate` (" + str(t / "extra.yaml") + " line 3)", None),
    ("run-variant-unknown", "run", lambda w, t: _run(w, "--variant=papr", model="MMSSL"),
     lambda w, t: "`variant`", None),
    ("run-epochs-0", "run", lambda w, t: _run(w, "--epochs=0"), lambda w, t: "`epochs`", None),
    ("run-seed-above-numpy-range", "run", lambda w, t: _run(w, "--seed=4294967296"), lambda w, t: "`seed`", None),
    ("run-pairwise-model-without-negatives", "run",
     lambda w, t: _run(w, config_files=[_yaml(t, "train_neg_sample_args: ~\n")]),
     lambda w, t: "`train_neg_sample_args` (" + str(t / "extra.yaml") + " line 1): BPR trains on pairs", None),
    ("run-missrec-train-stage-unknown", "run", lambda w, t: _run(w, "--train_stage=finetune", model="MISSRec"),
     lambda w, t: "`train_stage`", None),
    ("run-missrec-interest-ratio-0", "run", lambda w, t: _run(w, "--interest_ratio=0", model="MISSRec"),
     lambda w, t: "`interest_ratio`", None),
    ("run-missrec-freeze-not-a-list", "run", lambda w, t: _run(w, "--freeze=trm_model", model="MISSRec"),
     lambda w, t: "`freeze`", None),
    ("run-valid-metric-not-computed", "run", lambda w, t: _run(w, "--valid_metric=Recall@30"),
     lambda w, t: "`valid_metric`", None),
    ("run-topk-above-items", "run", lambda w, t: _run(w, dataset="few"), lambda w, t: "`topk`", None),
    ("run-empty-user-id-in-atomic-file", "run", lambda w, t: _run(w, model="MMSSL", dataset="holes"),
     lambda w, t: f"{w.data / 'holes' / 'holes.valid.inter'} line 4: empty or missing user_id ''", None),
    ("run-empty-user-id-builtin-model", "run", lambda w, t: _run(w, model="LightGCN", dataset="holes"),
     lambda w, t: f"{w.data / 'holes' / 'holes.valid.inter'} line 4: empty or missing user_id ''", None),
    ("run-id-with-trailing-space", "run",
     lambda w, t: _run(w, dataset=_atomic(t, lambda l: l[:2] + [l[2] + " "] + l[3:]), data=t),
     lambda w, t: "bad.test.inter line 3: item_id 'i", None),
    ("run-header-repeated-in-the-middle", "run",
     lambda w, t: _run(w, dataset=_atomic(t, lambda l: l[:5] + l[:1] + l[5:]), data=t),
     lambda w, t: "bad.test.inter line 6: repeats the header line", None),
    ("run-header-without-type", "run",
     lambda w, t: _run(w, dataset=_atomic(t, lambda l: ["user_id\titem_id"] + l[1:]), data=t),
     lambda w, t: "bad.test.inter line 1: header column 'user_id' has no ':type'", None),
    ("run-line-with-an-extra-field", "run",
     lambda w, t: _run(w, dataset=_atomic(t, lambda l: l[:3] + [l[3] + "\t5"] + l[4:]), data=t),
     lambda w, t: "bad.test.inter line 4: has 3 field(s), the header 2", None),
    ("run-id-starting-with-a-quote", "run",
     lambda w, t: _run(w, dataset=_atomic(t, lambda l: l[:2] + ['"' + l[2]] + l[3:]), data=t),
     lambda w, t: "bad.test.inter line 3: user_id '\"u", None),
    ("run-user-with-every-item", "run",
     lambda w, t: _run(w, dataset=_atomic(t, lambda l: l + [f"u0\ti{k}" for k in range(80)]), data=t),
     lambda w, t: f"{t / 'bad'}: user 'u0' has interacted with every one of the 80 items", None),
    ("run-device-without-gpu", "run", lambda w, t: _run(w, f"--device={CUDA}"),
     lambda w, t: f"`device` (command line --device={CUDA})", None),
    ("run-model-given-twice", "run", lambda w, t: _run(w, "--model=LightGCN"),
     lambda w, t: "--model: given twice with different values", None),
    ("run-model-lower-case", "run", lambda w, t: _run(w, model="bpr"),
     lambda w, t: "`model`: Unknown model 'bpr'; did you mean `BPR`?", None),
    ("run-encoding-not-a-codec", "run", lambda w, t: _run(w, "--encoding=False"),
     lambda w, t: "`encoding` (command line --encoding=False): expected a text encoding", None),
    ("run-field-separator-null", "run", lambda w, t: _run(w, config_files=[_yaml(t, "field_separator: null\n")]),
     lambda w, t: "`field_separator` (" + str(t / "extra.yaml") + " line 1): expected a non-empty text", None),
    ("run-load-col-without-interactions", "run", lambda w, t: _run(w, "--load_col={}"),
     lambda w, t: "`load_col` (command line --load_col={}): leaves out the interaction files", None),
    ("run-benchmark-filename-one-split", "run", lambda w, t: _run(w, "--benchmark_filename=['train']"),
     lambda w, t: "`benchmark_filename` (command line --benchmark_filename=['train']): expected three", None),
    ("run-load-col-as-a-list", "run", lambda w, t: _run(w, "--load_col=['user_id','item_id']"),
     lambda w, t: "`load_col` (command line", None),
    ("run-override-without-value", "run", lambda w, t: _run(w, "--epochs", "5"), lambda w, t: "--epochs", None),
    ("run-unknown-model", "run", lambda w, t: _run(w, model="LightGNC"), lambda w, t: "`model`", None),
    ("run-data-path-wrong", "run", lambda w, t: _run(w, data=t / "nowhere"),
     lambda w, t: str(t / "nowhere"), None),
    ("run-resume-other-dataset", "run", lambda w, t: _run(w, f"--resume={w.last}", dataset="tiny2"),
     lambda w, t: f"{w.last}: cannot continue this run: dataset: the checkpoint's is 'tiny'", None),
    ("run-resume-other-data", "run", lambda w, t: _run(w, f"--resume={w.last}", "--epochs=3", data=w.data2),
     lambda w, t: f"{w.last}: cannot continue this run: data:", None),
    ("run-resume-other-model", "run", lambda w, t: _run(w, f"--resume={w.last}", model="LightGCN"),
     lambda w, t: f"{w.last}: cannot continue this run: model:", None),
    ("run-resume-other-shape", "run", lambda w, t: _run(w, f"--resume={w.last}", "--embedding_size=32"),
     lambda w, t: f"{w.last}: cannot continue this run: `embedding_size`: checkpoint 64, now 32", None),
    ("run-resume-zero-byte-pth", "run", lambda w, t: _run(w, f"--resume={w.empty_pth}"),
     lambda w, t: f"{w.empty_pth}: is an empty file", None),
    ("run-resume-not-a-checkpoint", "run", lambda w, t: _run(w, f"--resume={w.text_pth}"),
     lambda w, t: str(w.text_pth), None),
    ("run-resume-checkpoint-bytes-changed", "run", lambda w, t: _run(w, f"--resume={w.damaged}"),
     lambda w, t: f"{w.damaged}: is damaged", None),
    # --- python -m recbole_mmssl.recommend
    ("recommend-device-without-gpu", "recommend", lambda w, t: _recommend(w, f"--device={CUDA}"),
     lambda w, t: f"--device={CUDA}", None),
    ("recommend-out-folder-missing", "recommend", lambda w, t: _recommend(w, out=t / "no" / "recs.csv"),
     lambda w, t: str(t / "no" / "recs.csv"), None),
    ("recommend-out-not-csv-or-json", "recommend", lambda w, t: _recommend(w, out=t / "recs.txt"),
     lambda w, t: str(t / "recs.txt"), None),
    ("recommend-data-path-wrong", "recommend", lambda w, t: _recommend(w, f"--data_path={t}"),
     lambda w, t: str(t / "tiny"), None),
    ("recommend-data-path-other-data", "recommend", lambda w, t: _recommend(w, f"--data_path={w.data2}"),
     lambda w, t: str(w.data2 / "tiny"), None),
    ("recommend-users-not-utf8", "recommend",
     lambda w, t: _recommend(w, "--users=" + str(_rewrite(t / "users.txt", b"u1\nu\xff2\n"))),
     lambda w, t: "users.txt line 2", None),
    ("recommend-users-missing", "recommend", lambda w, t: _recommend(w, f"--users={t / 'none.txt'}"),
     lambda w, t: str(t / "none.txt"), None),
    ("recommend-zero-byte-checkpoint", "recommend", lambda w, t: _recommend(w, checkpoint=w.empty_pth),
     lambda w, t: str(w.empty_pth), None),
    ("recommend-checkpoint-bytes-changed", "recommend", lambda w, t: _recommend(w, checkpoint=w.damaged),
     lambda w, t: f"{w.damaged}: is damaged or was changed after it was saved: tensor ", None),
    ("recommend-option-given-twice", "recommend", lambda w, t: _recommend(w) + ["--topk=7"],
     lambda w, t: "--topk: given twice with different values", None),
    ("recommend-topk-0", "recommend", lambda w, t: _recommend(w, "--topk=0"),
     lambda w, t: "--topk must be at least 1", None),
    ("recommend-out-is-the-users-file", "recommend",
     lambda w, t: _recommend(w, f"--users={_rewrite(t / 'users.csv', b'u1')}", out=t / "users.csv"),
     lambda w, t: "--out is the same file as --users", None),
    # --- python run_hyper.py
    ("hyper-params-file-missing", "hyper", lambda w, t: _hyper(w, t / "none.test"),
     lambda w, t: str(t / "none.test"), None),
    ("hyper-params-syntax-error", "hyper", lambda w, t: _hyper(w, _params(t, "\nlearning_rate choice [0.01,\n")),
     lambda w, t: "hyper.test line 2", None),
    ("hyper-params-misspelled-key", "hyper", lambda w, t: _hyper(w, _params(t, "learning_rat choice [0.01]\n")),
     lambda w, t: "`learning_rat` (" + str(t / "hyper.test") + " line 1)", None),
    ("hyper-params-bad-value", "hyper", lambda w, t: _hyper(w, _params(t, "learning_rate choice [0.01,-1]\n")),
     lambda w, t: "`learning_rate` (" + str(t / "hyper.test") + " line 1)", None),
    ("hyper-params-unknown-type", "hyper", lambda w, t: _hyper(w, _params(t, "learning_rate gaussian 0,1\n")),
     lambda w, t: "hyper.test line 1", None),
    ("hyper-config-file-missing", "hyper", lambda w, t: _hyper(w, w.params, f"--config_files={t / 'none.yaml'}"),
     lambda w, t: f"{t / 'none.yaml'}: config file not found", None),
    ("hyper-output-dir-holds-its-config-file", "hyper",
     lambda w, t: _hyper(w, w.params, f"--config_files={w.hyper / 'best.yaml'}"),
     lambda w, t: "--output_dir is the same file as --config_files", None),
    ("hyper-loguniform-bounds-that-are-values", "hyper",
     lambda w, t: _hyper(w, _params(t, "learning_rate loguniform 0.0001,0.01\n")),
     lambda w, t: "`learning_rate` (" + str(t / "hyper.test") + " line 1): loguniform 0.0001,0.01 looks like the "
                  "values themselves", None),
    ("hyper-loguniform-leaving-the-range", "hyper",
     lambda w, t: _hyper(w, _params(t, "dropout_prob loguniform -1,1\n")),
     lambda w, t: "`dropout_prob` (" + str(t / "hyper.test") + " line 1): loguniform -1,1 can draw 2.718", None),
    ("hyper-uniform-on-an-integer-key", "hyper", lambda w, t: _hyper(w, _params(t, "embedding_size uniform 16,64\n")),
     lambda w, t: "`embedding_size` (" + str(t / "hyper.test") + " line 1): uniform draws fractional values", None),
    ("hyper-algo-grid", "hyper", lambda w, t: _hyper(w, w.params, "--algo=grid"), lambda w, t: "--algo", None),
    ("hyper-exhaustive-over-a-range", "hyper",
     lambda w, t: _hyper(w, _params(t, "learning_rate uniform 0.001,0.01\n"), "--algo=exhaustive"),
     lambda w, t: "hyper.test line 1: `learning_rate` is a range", None),
    ("hyper-ray-address-unreachable", "hyper",
     lambda w, t: _hyper(w, w.params, "--tool=ray", f"--ray_address=127.0.0.1:{_free_port()}"),
     lambda w, t: "--ray_address=127.0.0.1:", None),
    ("hyper-max-evals-0", "hyper", lambda w, t: _hyper(w, w.params, "--max_evals=0"),
     lambda w, t: "--max_evals must be at least 1", None),
]


def run_case(command, argv, capsys):
    code = COMMANDS[command]([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_and_changes_nothing(world, case, tmp_path, capsys, monkeypatch):
    _, command, make_argv, expected, setup = case
    argv = make_argv(world, tmp_path)
    if setup:
        setup(monkeypatch, world, tmp_path)
    before = snapshot(world)
    capsys.readouterr()
    code, text = run_case(command, argv, capsys)
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert code == 2, text
    assert errors and expected(world, tmp_path) in errors[0], text
    assert any(line.startswith("fix: ") for line in text.splitlines()), text
    assert "Traceback" not in text
    assert snapshot(world) == before


def test_every_command_has_cases():
    counts = {command: sum(c[1] == command for c in CASES) for command in COMMANDS}
    assert len(CASES) >= 40 and min(counts.values()) >= 5, counts


# ----------------------------------------------------------------------------- resume and run files

def test_resume_refusal_lists_every_difference(world, capsys):
    code, text = run_case("run", _run(world, f"--resume={world.last}", "--embedding_size=32",
                                      "--train_batch_size=32", "--epochs=3"), capsys)
    assert code == 2
    assert "cannot continue this run: `embedding_size`: checkpoint 64, now 32" in text
    assert "\n  and `train_batch_size`: checkpoint 64, now 32" in text
    assert "epochs" not in text.split("fix:")[0]  # epochs may grow


def test_resume_of_other_data_names_both_fingerprints(world, capsys):
    code, text = run_case("run", _run(world, f"--resume={world.last}", "--epochs=3", data=world.data2), capsys)
    assert code == 2 and "data: the checkpoint was trained on other data" in text
    assert text.count("fingerprint") == 2


def test_two_runs_in_the_same_second_keep_their_own_files(world, tmp_path, monkeypatch):
    monkeypatch.setattr("recbole.trainer.trainer.get_local_time", lambda: "Jan-01-2030_00-00-00")
    config = {"data_path": str(world.data), "checkpoint_dir": str(tmp_path)}
    first = run_recbole_mmssl("BPR", "tiny", config_file_list=[str(world.base)], config_dict=config)
    files = folder_snapshot(tmp_path)
    second = run_recbole_mmssl("BPR", "tiny", config_file_list=[str(world.base)], config_dict={**config, "seed": 8})
    assert first["saved_model_file"] == str(tmp_path / "BPR-Jan-01-2030_00-00-00.pth")
    assert second["saved_model_file"] == str(tmp_path / "BPR-Jan-01-2030_00-00-00-1.pth")
    assert {k: v for k, v in folder_snapshot(tmp_path).items() if k in files} == files
    assert load_checkpoint(second["saved_model_file"])["run"] != load_checkpoint(first["saved_model_file"])["run"]


def test_ctrl_c_exits_130_with_the_whole_command_and_it_continues_the_run(world, tmp_path, capsys, caplog,
                                                                         monkeypatch):
    argv = _run(world, "--epochs=3", saved=tmp_path)
    from recbole_mmssl.checkpoint import TensorCheckpointMixin

    save_last = TensorCheckpointMixin._save_last_checkpoint

    def interrupt_after_epoch_1(self, epoch_idx):  # Ctrl-C once epoch 1 is saved
        save_last(self, epoch_idx)
        if epoch_idx == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(TensorCheckpointMixin, "_save_last_checkpoint", interrupt_after_epoch_1)
    with caplog.at_level("WARNING"):
        code, text = run_case("run", argv, capsys)
    assert code == 130 and "Traceback" not in text
    (warning,) = [r.getMessage() for r in caplog.records if "Interrupted" in r.getMessage()]
    command = shlex.split(warning.split("continue with: ", 1)[1])
    (last,) = tmp_path.glob("*.last.pth")
    assert command[:2] == ["python", "run_recbole_mmssl.py"] and command[-1] == f"--resume={last}"
    assert command[2:-1] == argv  # the user's own arguments, unchanged
    monkeypatch.setattr(TensorCheckpointMixin, "_save_last_checkpoint", save_last)
    assert runner.main(command[2:]) == 0
    assert load_checkpoint(str(last))["epoch"] == 2


# ----------------------------------------------------------------------------- config rules

def test_free_form_key_is_accepted_once_declared(world, tmp_path):
    declared = _yaml(tmp_path, "extra_keys: [my_key]\nmy_key: 3\n")
    config = Config(model="BPR", dataset="tiny", config_file_list=[str(world.base), str(declared)],
                    config_dict={"data_path": str(world.data)})
    assert config["my_key"] == 3
    with pytest.raises(ConfigError, match=r"`my_key` \(config dict\): unknown key"):
        Config(model="BPR", dataset="tiny", config_dict={"data_path": str(world.data), "my_key": 3})


def test_settings_of_another_model_are_accepted_with_a_note(world):
    config = Config(model="BPR", dataset="tiny", config_dict={"data_path": str(world.data)},
                    cmd_args=["--variant=released"])
    assert config.notes == ["`variant` (command line --variant=released) is a setting of MMSSL, not of BPR: "
                            "it has no effect here."]


def test_command_line_values_are_parsed_never_evaluated(world, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ConfigError, match="`learning_rate`"):
        Config(model="BPR", dataset="tiny", config_dict={"data_path": str(world.data)},
               cmd_args=[f"--learning_rate=__import__('pathlib').Path('{marker}').touch()"])
    assert not marker.exists()


def test_debug_shows_the_traceback_and_programming_errors_keep_theirs(world, capsys, monkeypatch):
    code, text = run_case("run", _run(world, "--learning_rat=0.1", "--debug"), capsys)
    assert code == 2 and "Traceback" in text and "error: `learning_rat`" in text
    monkeypatch.setenv("RECBOLE_MMSSL_DEBUG", "1")
    code, text = run_case("convert", ["hkuds", world.src, "--name", "a/b", "--out", world.out], capsys)
    assert code == 2 and "Traceback" in text and "error: --name=a/b" in text
    with pytest.raises(ZeroDivisionError):
        cli.run_cli(lambda argv: 1 / 0, [])


def test_stale_temp_folders_of_killed_conversions_are_removed(world, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(make_temp_dir(str(out), "toy"))
    (stale / "toy.train.inter").write_text("partial")
    (stale / TEMP_MARKER).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "time": 0}))
    running = Path(make_temp_dir(str(out), "toy"))  # this process: still alive
    foreign = out / ".toy.tmp-byhand"  # no marker: not ours
    foreign.mkdir()
    assert convert.main(_convert(world.src, w=SimpleNamespace(out=out))) == 0
    assert not stale.exists() and running.exists() and foreign.exists()
    assert not (out / "toy" / TEMP_MARKER).exists()


# ----------------------------------------------------------------------------- real processes

def _process(args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120, **kwargs)


@pytest.mark.parametrize("command, expected", [
    (["-m", "recbole_mmssl.data.convert", "hkuds", "{src}", "--name", "a/b", "--out", "{out}"], "error: --name=a/b"),
    (["-m", "recbole_mmssl.data.features", "text", "--input", "{base}", "--id-column", "id", "--text-column", "t",
      "--out", "{feat}"], "error: {feat}: --out is a folder"),
    ([str(REPO / "run_recbole_mmssl.py"), "--learning_rate=abc", "--data_path={data}"],
     "error: `learning_rate` (command line --learning_rate=abc)"),
    (["-m", "recbole_mmssl.recommend", "--checkpoint={empty}", "--out={recs}/r.csv"], "error: {empty}: is an empty"),
    ([str(REPO / "run_hyper.py"), "--dataset=tiny", "--params_file=none.test", "--output_dir={hyper}"],
     "error: none.test: parameter file not found"),
], ids=["convert", "features", "run_recbole_mmssl", "recommend", "run_hyper"])
def test_entry_points_exit_2_with_one_error_line(world, command, expected):
    names = {"src": world.src, "out": world.out, "base": world.base, "feat": world.feat, "data": world.data,
             "empty": world.empty_pth, "recs": world.recs, "hyper": world.hyper}
    before = snapshot(world)
    done = _process([part.format(**names) for part in command], cwd=world.cwd)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-2] == expected.format(**names) or \
        done.stderr.splitlines()[-2].startswith(expected.format(**names)), done.stderr
    assert done.stderr.splitlines()[-1].startswith("fix: ") and "Traceback" not in done.stderr
    assert snapshot(world) == before


def test_ctrl_c_in_a_real_process(world, tmp_path):
    """SIGINT while training: exit code 130, one warning with the command, no traceback."""
    args = [REPO / "run_recbole_mmssl.py", *_run(world, "--epochs=500", "--stopping_step=500", saved=tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # a suite started in the background of a script inherits SIGINT ignored, and Python keeps it so:
    # the child gets the default back, as a command typed in a terminal has
    proc = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=world.cwd,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 90
    while not list(tmp_path.glob("*.last.pth")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    (last,) = tmp_path.glob("*.last.pth")
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err and err.count("Interrupted") == 1
    assert f"continue with: python {REPO / 'run_recbole_mmssl.py'} " in err and f"--resume={last}" in err
