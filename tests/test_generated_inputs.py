"""Generated bad input for every command: start from a valid input set, mutate it at random, run the
command in a fresh folder and check the invariants of tests/_generated_util.py.

The table of tests/test_bad_inputs.py guards the cases it lists; this test explores the classes
around them (file contents, ids, headers, arrays, config values, parameter lines, output paths). The
commands run in-process through their ``main`` (the console's path, ``run_cli`` included) on tiny
data. The default profile runs a bounded number of examples per command (about two minutes on two
cores); ``--hypothesis-profile=long`` runs ten times as many. Failing examples are kept in the
Hypothesis database (``.hypothesis/`` beside the tests, not committed) and replayed first next time.
Under CI (``CI`` set) the examples are derandomized: the same ones on every run (tests/conftest.py).
"""

import csv
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import run_recbole_mmssl as runner
from recbole_mmssl import hyper, recommend
from recbole_mmssl.checkpoint import TensorCheckpointMixin, last_checkpoint_path
from recbole_mmssl.data import convert, features
from recbole_mmssl.data.atomic_check import check_atomic_files
from recbole_mmssl.data.atomic_io import read_feature_file, write_feature_file
from recbole_mmssl.data.ownership import MARKER
from recbole_mmssl.quick_start import run_recbole_mmssl
from tests._data_util import damage_tensors, make_hkuds, make_mmrec
from tests._data_util import features as random_features
from tests._generated_util import EDITS, NUMBERS, TOKENS, VALUES, check, edit_text, examples, fresh_copy, run, snapshot
from tests._lead_util import SMALL_RUN, write_tiny_dataset

def changes(draw, valid, **odd):
    """``valid`` with at most two of its entries replaced by a draw from ``odd[entry]``: most examples
    change one or two things, so each change is seen on its own and not hidden behind another."""
    changed = draw(st.sets(st.sampled_from(sorted(odd)), max_size=2))
    return {key: draw(odd[key]) if key in changed else value for key, value in valid.items()}
SETTINGS = {"deadline": None,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture]}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Valid inputs of every command, built once: each example starts from a copy."""
    root = tmp_path_factory.mktemp("generated")
    before = os.getcwd()
    os.chdir(root)
    try:
        make_hkuds(root / "convert" / "src", feats={"image": random_features()})
        convert.convert("hkuds", str(root / "convert" / "src"), "toy", str(root / "convert" / "out"), progress=False)
        run_root = root / "run"
        write_tiny_dataset(run_root / "data")
        (run_root / "base.yaml").write_text(yaml.safe_dump({**SMALL_RUN, "epochs": 1}))
        result = run_recbole_mmssl("BPR", "tiny", config_file_list=[str(run_root / "base.yaml")],
                                   config_dict={"data_path": str(run_root / "data"),
                                                "checkpoint_dir": str(run_root / "saved")})
        damage_tensors(result["saved_model_file"], run_root / "damaged.pth")
        (run_root / "notes.pth").write_text("not a checkpoint\n")
        shutil.rmtree(root / "log", ignore_errors=True)
        shutil.rmtree(root / "log_tensorboard", ignore_errors=True)
    finally:
        os.chdir(before)
    best = Path(result["saved_model_file"]).name
    return {"root": root, "best": best, "last": Path(last_checkpoint_path(best)).name}


def _workdir():
    return tempfile.TemporaryDirectory(prefix="generated-")


# ----------------------------------------------------------------------------- convert

ITEM_IDS = st.one_of(st.integers(0, 7), st.integers(-3, 2**64), st.floats(allow_nan=True), st.booleans(), st.none(),
                     st.text(max_size=3))
SPLIT = st.dictionaries(st.one_of(TOKENS, st.sampled_from(["0", "1", "2"])),
                        st.one_of(st.lists(ITEM_IDS, max_size=4), VALUES), max_size=4)
ARRAYS = hnp.arrays(st.sampled_from(["float32", "float16", "float64", "int8", "bool", "complex64", "<U2"]),
                    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))
NPY = st.one_of(st.just("good"), st.just("npz"), st.binary(max_size=40), ARRAYS)


@st.composite
def convert_cases(draw):
    return changes(
        draw, {"layout": "hkuds", "json": {}, "inter_edits": None, "npy": {}, "name": "toy", "modalities": None,
               "out": "fresh"},
        layout=st.just("mmrec"),
        json=st.dictionaries(st.sampled_from(["train.json", "val.json", "test.json"]),
                             st.one_of(SPLIT.map(json.dumps), st.just("dup"), EDITS), min_size=1, max_size=2),
        inter_edits=EDITS,
        npy=st.dictionaries(st.sampled_from(["image", "audio", "Copy of image", "2d", "a.b"]), NPY, min_size=1,
                            max_size=2),
        name=TOKENS, modalities=st.lists(st.sampled_from(["image", "audio", "text", ""]), max_size=2),
        out=st.sampled_from(["converted", "extra", "edited", "foreign", "src", "inside", "file"]))


def _convert_source(src, case):
    if case["layout"] == "mmrec":
        rows = [(0, 0, 0), (0, 1, 0), (1, 2, 0), (1, 3, 1), (2, 4, 2), (0, 5, 2)]
        make_mmrec(src, "toy", rows)
        if case["inter_edits"]:
            path = src / "toy.inter"
            path.write_bytes(edit_text(path.read_bytes(), case["inter_edits"]))
    else:
        make_hkuds(src)
        for name, content in case["json"].items():
            path = src / name
            if content == "dup":
                path.write_text(path.read_text().replace("{", '{"0": [5], ', 1))
            elif isinstance(content, list):
                path.write_bytes(edit_text(path.read_bytes(), content, sep=","))
            else:
                path.write_text(content)
    for modality, content in {"image": "good", **case["npy"]}.items():
        path = src / f"{modality}_feat.npy"
        if isinstance(content, np.ndarray):
            np.save(path, content)
        elif content == "npz":
            with open(path, "wb") as f:
                np.savez(f, a=random_features())
        elif content == "good":
            np.save(path, random_features())
        else:
            path.write_bytes(content)


def _convert_out(root, case, template):
    """(--out, --name) for the case's output scenario, with what already sits there."""
    name = case["name"]
    if case["out"] == "src":
        return root, "src"
    if case["out"] == "inside":
        return root / "src", name
    if case["out"] == "file":
        (root / "afile").write_text("mine\n")
        return root / "afile", name
    out = root / "out"
    if case["out"] != "fresh":
        shutil.copytree(template["root"] / "convert" / "out", out)
        folder = out / "toy"
        if case["out"] == "extra":
            write_feature_file(str(folder / "toy.audio_feat"), [str(i) for i in range(6)], random_features(dim=2),
                               "audio", progress=False)
        elif case["out"] == "edited":
            (folder / "toy.train.inter").write_bytes((folder / "toy.train.inter").read_bytes() + b"9\t1\n")
        elif case["out"] == "foreign":
            (folder / MARKER).unlink()
            (folder / "mine.txt").write_text("mine\n")
    return out, name


def _listed(folder):
    try:
        with open(folder / MARKER) as f:
            return set(json.load(f)["files"]) | {MARKER}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


@settings(max_examples=examples(300), **SETTINGS)
@given(case=convert_cases())
def test_convert_keeps_the_invariants(template, case):
    with _workdir() as tmp:
        root = Path(tmp)
        _convert_source(root / "src", case)
        out, name = _convert_out(root, case, template)
        argv = [case["layout"], root / "src", "--name", name, "--out", out, "--no-progress"]
        if case["modalities"] is not None:
            argv.append(f"--modalities={','.join(case['modalities'])}")
        folder = (out / name) if name and "/" not in name and "\x00" not in name else None
        written_before = _listed(folder) if folder else set()
        before = snapshot(root)
        code, text = run(convert.main, argv, root)
        written = written_before | (_listed(folder) if folder else set())
        rel = os.path.relpath(folder, root) if folder else None

        def is_output(path):
            return rel is not None and os.path.dirname(path) == rel and os.path.basename(path) in written

        check(code, text, before, root, is_output, inputs=[os.path.join("src", p) for p in os.listdir(root / "src")])
        if code == 0:  # whatever the converter writes, the loader reads as written
            config = {"field_separator": "\t", "seq_separator": " ", "encoding": "utf-8", "USER_ID_FIELD": "user_id",
                      "ITEM_ID_FIELD": "item_id", "load_col": None, "unload_col": None, "additional_feat_suffix": None,
                      "benchmark_filename": ["train", "valid", "test"]}
            check_atomic_files(config, str(folder), name)
            for feat in folder.glob(f"{glob_escape(name)}.*_feat"):
                read_feature_file(feat)


def glob_escape(text):
    return re.sub(r"([*?\[])", r"[\1]", text)


# ----------------------------------------------------------------------------- features

@st.composite
def features_cases(draw):
    header = draw(st.lists(st.sampled_from(["id", "title", "item_id:token", "title:token_seq", "x"]), min_size=1,
                           max_size=3))
    cell = st.one_of(st.sampled_from(["1", "2", "3", "17", "a b", "x y z"]), TOKENS)
    return changes(
        draw, {"sep": ",", "header": ["id", "title"], "rows": [["1", "a b"], ["2", "c"]], "edits": None, "id": "id",
               "text": "title", "out": "new", "model": None, "extra": []},
        sep=st.sampled_from(["\t", ";", "|"]), header=st.just(header),
        rows=st.lists(st.lists(cell, min_size=len(header), max_size=len(header)), min_size=1, max_size=4),
        edits=EDITS, id=st.sampled_from(["item_id", "title", "nope"]), text=st.sampled_from(["x", "id", "nope"]),
        out=st.sampled_from(["existing", "folder", "input", "under_file", "no_modality"]),
        model=st.sampled_from(["model", "empty", "file", "missing"]),
        extra=st.lists(st.sampled_from(["--batch-size=0", "--batch-size=2", "--modality=text", "--modality=a b",
                                        "--modality=image", "--input=other.csv"]), min_size=1, max_size=2))


def _fake_encoder(texts, model_path=None, batch_size=64, device="cpu", progress=True):
    """Stands in for the sentence encoder (seconds to load): the input handling is what is tested."""
    return np.arange(len(texts) * 3, dtype=np.float32).reshape(len(texts), 3)


@settings(max_examples=examples(200), **SETTINGS)
@given(case=features_cases())
def test_features_keeps_the_invariants(case):
    with _workdir() as tmp:
        root = Path(tmp)
        table = case["sep"].join(case["header"]) + "\n" + "".join(case["sep"].join(r) + "\n" for r in case["rows"])
        data = table.encode("utf-8", errors="surrogatepass")
        (root / "items.csv").write_bytes(edit_text(data, case["edits"], case["sep"]) if case["edits"] else data)
        (root / "feat").mkdir()
        (root / "feat" / "toy.text_feat").write_text("item_id:token\ttext_feat:float_seq\n1\t0.5\n")
        (root / "afile").write_text("mine\n")
        model = {"model": root / "model", "empty": root / "empty", "file": root / "afile",
                 "missing": root / "nowhere"}.get(case["model"])
        (root / "model").mkdir()
        (root / "model" / "config.json").write_text("{}")
        (root / "empty").mkdir()
        out = {"new": root / "feat" / "new.text_feat", "existing": root / "feat" / "toy.text_feat",
               "folder": root / "feat", "input": root / "items.csv", "under_file": root / "afile" / "x.text_feat",
               "no_modality": root / "feat" / "plain.bin"}[case["out"]]
        argv = ["text", "--input", root / "items.csv", "--id-column", case["id"], "--text-column", case["text"],
                "--out", out, "--no-progress", *case["extra"]] + ([f"--model={model}"] if model else [])
        before = snapshot(root)
        with mock.patch.object(features, "encode_texts", _fake_encoder):
            code, text = run(features.main, argv, root)
        check(code, text, before, root, lambda path: path == os.path.relpath(out, root),
              inputs=[root / "items.csv", root / "model" / "config.json"])
        if code == 0:
            read_feature_file(out)


# ----------------------------------------------------------------------------- run_recbole_mmssl.py

KEY_VALUES = {
    "learning_rate": st.one_of(NUMBERS, TOKENS),
    "epochs": st.sampled_from([0, 1, 2, -1, 1.5, "a", None, True]),
    "embedding_size": st.sampled_from([0, -4, 8, 16, 16.5, "x", None, True]),
    "train_batch_size": st.sampled_from([0, 1, 7, 2048, -3, "a", 2.5]),
    "topk": st.sampled_from([10, [5, 20], [0], [100], "x", [], None, [20, 50]]),
    "valid_metric": st.sampled_from(["Recall@20", "recall@20", "NDCG@10", "Recall@30", "MRR", "x", None, 3]),
    "metrics": st.sampled_from([["Recall"], ["Recall", "NDCG"], ["Foo"], "Recall", [], None]),
    "device": st.sampled_from(["cpu", "cuda", "cuda:7", "tpu", "", None, 1]),
    "seed": st.one_of(NUMBERS, TOKENS),
    "stopping_step": st.sampled_from([0, 1, 5, -1, "x"]),
    "eval_step": st.sampled_from([0, 1, 2, -1, "x"]),
    "load_col": st.sampled_from([None, ["user_id"], {"inter": ["user_id", "item_id"]}, {"inter": ["user_id"]},
                                 {"inter": "*"}, "x", {}]),
    "benchmark_filename": st.sampled_from([None, ["train", "valid", "test"], ["train"], ["a", "b", "c"], "x", []]),
    "learner": st.sampled_from(["adam", "sgd", "foo", 1]),
    "weight_decay": NUMBERS,
    "modalities": st.sampled_from([None, ["image"], ["x"], "image", [], ["image", "image"]]),
    "variant": st.sampled_from(["paper", "released", "x"]),
    "learning_rat": NUMBERS,
    "train_neg_sample_args": st.sampled_from([None, {"distribution": "uniform", "sample_num": 1}, "x",
                                              {"distribution": "foo"}]),
    "field_separator": st.sampled_from(["\t", ",", " "]),
    "encoding": st.sampled_from(["utf-8", "latin-1", "foo"]),
    "user_inter_num_interval": st.sampled_from(["[0,inf)", "[5,inf)", "x", "[100,inf)"]),
    "n_layers": st.sampled_from([0, 1, 2, -1, "x"]),
}
OVERRIDES = st.lists(st.sampled_from(sorted(KEY_VALUES)).flatmap(lambda k: st.tuples(st.just(k), KEY_VALUES[k])),
                     max_size=3)


def _override(key, value, form):
    text = value if isinstance(value, str) else repr(value)
    return [f"--{key}", text] if form == "split" else [f"--{key}={text}"]


@st.composite
def run_cases(draw):
    return changes(
        draw, {"model": "BPR", "overrides": [], "form": "joined", "edit": None, "config": None, "resume": None,
               "interrupt": False, "twice": False},
        model=st.sampled_from(["LightGCN", "VBPR", "Foo", "bpr"]), overrides=OVERRIDES, form=st.just("split"),
        edit=st.tuples(st.sampled_from(["train.inter", "valid.inter", "test.inter", "image_feat"]), EDITS),
        config=st.dictionaries(st.sampled_from(sorted(KEY_VALUES)), VALUES, max_size=2) | st.text(max_size=20),
        resume=st.sampled_from(["last", "best", "damaged", "notes", "missing"]),
        interrupt=st.sampled_from(["ctrl-c", "sigterm"]),
        twice=st.just(True))


@settings(max_examples=examples(150), **SETTINGS)
@given(case=run_cases())
def test_run_keeps_the_invariants(template, case):
    with _workdir() as tmp:
        root = fresh_copy(template["root"] / "run", tmp)
        if case["edit"]:
            path = root / "data" / "tiny" / f"tiny.{case['edit'][0]}"
            path.write_bytes(edit_text(path.read_bytes(), case["edit"][1]))
        files = [root / "base.yaml"]
        if case["config"] is not None:
            files.append(root / "extra.yaml")
            files[-1].write_text(case["config"] if isinstance(case["config"], str) else
                                 yaml.safe_dump(case["config"], allow_unicode=True))
        argv = [f"--config_files={','.join(map(str, files))}", f"--data_path={root / 'data'}",
                f"--checkpoint_dir={root / 'saved'}", f"--model={case['model']}", "--dataset=tiny"]
        for key, value in case["overrides"]:
            argv += _override(key, value, case["form"])
        resume = {"last": root / "saved" / template["last"], "best": root / "saved" / template["best"],
                  "damaged": root / "damaged.pth", "notes": root / "notes.pth", "missing": root / "none.pth"}
        if case["resume"]:
            argv.append(f"--resume={resume[case['resume']]}")
        if case["twice"]:
            argv.append("--model=LightGCN")
        own = {template["best"], template["last"]} if case["resume"] in ("last", "best") else set()
        before = snapshot(root)
        save_last = TensorCheckpointMixin._save_last_checkpoint

        def interrupt(self, epoch_idx):  # once the first epoch is saved: Ctrl-C, or `kill PID`
            save_last(self, epoch_idx)
            if case["interrupt"] == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            raise KeyboardInterrupt

        with mock.patch.object(TensorCheckpointMixin, "_save_last_checkpoint", interrupt if case["interrupt"] else save_last):
            code, text = run(runner.main, argv, root)

        def is_output(path):
            return path.startswith(("log" + os.sep, "log_tensorboard" + os.sep)) or \
                (path.startswith("saved" + os.sep) and (path not in before or os.path.basename(path) in own))

        inputs = files + [p for p in (root / "data" / "tiny").iterdir() if not p.name.startswith(".")]
        check(code, text, before, root, is_output, codes=(0, 2, 130, 143) if case["interrupt"] else (0, 2),
              inputs=inputs)


# ----------------------------------------------------------------------------- recommend

@st.composite
def recommend_cases(draw):
    return changes(
        draw, {"users": ["u1", "u2"], "users_edits": None, "topk": 5, "out": "recs.csv", "checkpoint": "best",
               "data": None, "device": None, "twice": False},
        users=st.none() | st.lists(st.one_of(TOKENS, st.sampled_from(["u1", "u2", "u39", "user_id"])), max_size=4),
        users_edits=EDITS, topk=st.integers(-2, 200),
        out=st.sampled_from(["recs.json", "recs.txt", "users", "checkpoint", "nodir", "folder", "existing"]),
        checkpoint=st.sampled_from(["last", "damaged", "notes", "missing", "folder"]),
        data=st.sampled_from(["data", "missing", "edited"]),
        device=st.sampled_from(["cpu", "cuda", "cuda:3", "gpu", ""]),
        twice=st.just(True))


@settings(max_examples=examples(150), **SETTINGS)
@given(case=recommend_cases())
def test_recommend_keeps_the_invariants(template, case):
    with _workdir() as tmp:
        root = fresh_copy(template["root"] / "run", tmp)
        (root / "recs.csv").write_text("user_id,rank,item_id,score\nu1,1,i1,0.5\n")
        argv = []
        data = "".join(f"{u}\n" for u in case["users"] or ["u1", "u2"]).encode("utf-8", errors="surrogatepass")
        (root / "users.csv").write_bytes(edit_text(data, case["users_edits"]) if case["users_edits"] else data)
        argv.append(f"--users={root / 'users.csv'}" if case["users"] is not None else "--users=all")
        checkpoint = {"best": root / "saved" / template["best"], "last": root / "saved" / template["last"],
                      "damaged": root / "damaged.pth", "notes": root / "notes.pth", "missing": root / "none.pth",
                      "folder": root / "saved"}[case["checkpoint"]]
        out = {"users": root / "users.csv", "checkpoint": checkpoint, "nodir": root / "no" / "r.csv",
               "folder": root / "saved", "existing": root / "recs.csv"}.get(case["out"], root / case["out"])
        argv += [f"--checkpoint={checkpoint}", f"--out={out}", f"--topk={case['topk']}"]
        if case["data"] == "edited":
            shutil.copytree(root / "data", root / "data2")
            path = root / "data2" / "tiny" / "tiny.train.inter"
            path.write_text(path.read_text().replace("u1\t", "u2\t", 1))
        if case["data"]:
            argv.append(f"--data_path={root / {'data': 'data', 'missing': 'none', 'edited': 'data2'}[case['data']]}")
        if case["device"] is not None:
            argv.append(f"--device={case['device']}")
        if case["twice"]:
            argv.append("--topk=3")
        before = snapshot(root)
        code, text = run(recommend.main, argv, root)
        inputs = [checkpoint] + ([root / "users.csv"] if case["users"] is not None else [])
        check(code, text, before, root, lambda path: path == os.path.relpath(out, root), inputs=inputs)
        if code == 0:
            with open(out) as f:
                rows = json.load(f) if str(out).endswith(".json") else list(csv.DictReader(f))
            assert rows is not None


# ----------------------------------------------------------------------------- run_hyper.py

RANGE_BOUNDS = {"epochs": st.sampled_from([0, 1, 2, -1]), "embedding_size": st.sampled_from([0, 8, 16, -1]),
                "train_batch_size": st.sampled_from([0, 1, 64])}
HYPER_KEYS = ["learning_rate", "embedding_size", "epochs", "train_batch_size", "dropout_prob", "weight_decay",
              "learning_rat", "seed", "variant", "reg_weight"]


GOOD_LINES = {"learning_rate": "learning_rate loguniform -7,-4", "embedding_size": "embedding_size choice [8,16]",
              "epochs": "epochs choice [1]", "train_batch_size": "train_batch_size quniform 16,64,16",
              "dropout_prob": "dropout_prob uniform 0.1,0.5", "weight_decay": "weight_decay choice [0,0.001]",
              "seed": "seed choice [1,2]"}


@st.composite
def hyper_lines(draw):
    name = draw(st.sampled_from(HYPER_KEYS))
    if name in GOOD_LINES and draw(st.booleans()):
        return GOOD_LINES[name]
    kind = draw(st.sampled_from(["choice", "choice", "uniform", "loguniform", "quniform", "gaussian", ""]))
    if kind == "choice":
        pool = KEY_VALUES.get(name, st.one_of(NUMBERS, TOKENS))
        value = json.dumps(draw(st.lists(pool, max_size=3)))
    else:
        bound = RANGE_BOUNDS.get(name, NUMBERS)
        value = ",".join(str(draw(bound)) for _ in range(draw(st.integers(1, 3))))
    return draw(st.sampled_from([f"{name} {kind} {value}", f"{name} {kind} {value}", draw(TOKENS)]))


@st.composite
def hyper_cases(draw):
    return changes(
        draw, {"lines": ["learning_rate loguniform -7,-4", "embedding_size choice [8,16]"], "algo": None,
               "ray": False, "config_is_output": False},
        lines=st.lists(hyper_lines(), min_size=1, max_size=3),
        algo=st.sampled_from(["random", "bayes", "exhaustive", "grid"]), ray=st.just(True),
        config_is_output=st.just(True))


@settings(max_examples=examples(100), **SETTINGS)
@given(case=hyper_cases())
def test_hyper_keeps_the_invariants(template, case):
    with _workdir() as tmp:
        root = fresh_copy(template["root"] / "run", tmp)
        (root / "hyper.test").write_text("\n".join(case["lines"]) + "\n")
        (root / "out").mkdir()
        (root / "out" / "best.yaml").write_text("learning_rate: 0.01\n")
        config = root / "out" / "best.yaml" if case["config_is_output"] else root / "base.yaml"
        argv = ["--model=BPR", "--dataset=tiny", f"--data_path={root / 'data'}", f"--config_files={config}",
                f"--params_file={root / 'hyper.test'}", "--max_evals=1", "--epochs=1", f"--output_dir={root / 'out'}"]
        argv += ["--tool=ray", "--ray_address=127.0.0.1:9"] if case["ray"] else ["--tool=hyperopt"]
        if case["algo"]:
            argv.append(f"--algo={case['algo']}")
        before = snapshot(root)
        code, text = run(hyper.main, argv, root)

        def is_output(path):
            return path.startswith("out" + os.sep) and os.path.basename(path) in hyper.OUTPUT_FILES or \
                path.startswith(("log" + os.sep, "log_tensorboard" + os.sep))

        check(code, text, before, root, is_output, inputs=[root / "hyper.test", config])
