"""run_hyper.py: a 2-trial search with each tool on a tiny dataset, selected on validation."""

import csv
import sys

import pytest
import yaml

from recbole_mmssl import hyper as run_hyper
from tests._lead_util import SMALL_RUN, write_tiny_dataset


@pytest.fixture
def search_setup(tmp_path, monkeypatch):
    write_tiny_dataset(tmp_path)
    params = tmp_path / "hyper.test"
    params.write_text("learning_rate choice [0.01,0.001]\nembedding_size choice [8,16]\n")
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump({k: v for k, v in SMALL_RUN.items()}))
    monkeypatch.setattr(sys, "argv", ["run_hyper.py"])
    monkeypatch.chdir(tmp_path)
    return tmp_path, params, fixed


@pytest.mark.parametrize("tool", ["hyperopt", "ray"])
def test_two_trial_search_writes_best_config_and_trial_table(search_setup, tool):
    tmp_path, params, fixed = search_setup
    out = tmp_path / f"out-{tool}"
    run_hyper.main([
        "--model=BPR", "--dataset=tiny", f"--data_path={tmp_path}", f"--params_file={params}",
        f"--config_files={fixed}", f"--tool={tool}", "--max_evals=2", "--algo=random", "--ray_cpus=2",
        "--grace_period=1", f"--output_dir={out}",
    ])
    with open(out / "trials.csv") as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 2
    best_score = max(float(t["valid_score"]) for t in trials)
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["model"] == "BPR" and best["learning_rate"] in (0.01, 0.001)
    assert f"{best_score:.4f}" in (out / "best.yaml").read_text().splitlines()[0]
    assert (out / "trials.md").read_text().count("\n|") >= 3


def test_a_diverging_trial_is_a_failed_row_and_the_search_goes_on(search_setup, monkeypatch, capsys):
    tmp_path, params, fixed = search_setup
    real_trial, calls = run_hyper.run_trial, []

    def first_diverges(params_, fixed_):
        calls.append(params_)
        if len(calls) == 1:
            raise ValueError("Training loss is nan")
        return real_trial(params_, fixed_)

    monkeypatch.setattr(run_hyper, "run_trial", first_diverges)
    argv = ["--model=BPR", "--dataset=tiny", f"--data_path={tmp_path}", f"--params_file={params}",
            f"--config_files={fixed}", "--tool=hyperopt", "--max_evals=2", "--algo=random"]
    assert run_hyper.main(argv + [f"--output_dir={tmp_path / 'out'}"]) == 0
    with open(tmp_path / "out" / "trials.csv") as f:
        trials = list(csv.DictReader(f))
    assert [t["status"] for t in trials] == ["failed: ValueError: Training loss is nan", "finished"]
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert (best["learning_rate"], best["embedding_size"]) == (calls[1]["learning_rate"], calls[1]["embedding_size"])
    monkeypatch.setattr(run_hyper, "run_trial", lambda *a: (_ for _ in ()).throw(ValueError("Training loss is nan")))
    capsys.readouterr()
    assert run_hyper.main(argv + [f"--output_dir={tmp_path / 'none'}"]) == 2  # every trial failed: said, nothing written
    assert "none of the 2 trial(s) produced a validation score" in capsys.readouterr().err
    assert not (tmp_path / "none" / "best.yaml").exists()


def test_ray_search_whose_every_trial_diverges_says_so_and_writes_nothing(search_setup, capsys):
    tmp_path, params, fixed = search_setup
    params.write_text("learning_rate choice [1e30]\nembedding_size choice [8,16]\n")  # the loss goes NaN
    assert run_hyper.main([
        "--model=BPR", "--dataset=tiny", f"--data_path={tmp_path}", f"--params_file={params}",
        f"--config_files={fixed}", "--tool=ray", "--max_evals=2", "--ray_cpus=2", f"--output_dir={tmp_path / 'out'}",
    ]) == 2
    # Ray prints each failed trial's traceback as it happens; the search then ends with one error
    last_lines = capsys.readouterr().err.strip().splitlines()[-2:]
    assert "none of the 2 trial(s) produced a validation score" in last_lines[0] and last_lines[1].startswith("fix: ")
    assert not (tmp_path / "out" / "best.yaml").exists()


def test_params_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "hyper.test"
    bad.write_text("learning_rate gaussian 0,1\n")
    with pytest.raises(ValueError, match="line 1: unknown type 'gaussian'"):
        run_hyper.read_space(str(bad))


def test_loguniform_bounds_are_exponents_for_both_tools(tmp_path):
    """RecBole's hyper.test gives loguniform bounds as exponents (hyperopt's convention)."""
    import math

    params = tmp_path / "hyper.test"
    params.write_text("learning_rate loguniform -8.5,-6.2\n")
    space = run_hyper.read_space(str(params))
    domain = run_hyper.ray_domain(*space["learning_rate"])
    assert domain.lower == pytest.approx(math.exp(-8.5)) and domain.upper == pytest.approx(math.exp(-6.2))
    samples = [domain.sample() for _ in range(200)]
    assert all(math.exp(-8.5) <= s <= math.exp(-6.2) for s in samples)
    params.write_text("# rates\nlearning_rate loguniform 0,710\n")  # exp(710) is no float
    with pytest.raises(ValueError, match=r"line 2: loguniform draws up to exp\(710\), beyond the largest float"):
        run_hyper.read_space(str(params))


def test_choice_values_in_exponent_notation_are_numbers(tmp_path):
    params = tmp_path / "hyper.test"
    params.write_text("G_rate choice [1e-4,5e-4,1.8e-3]\ntype choice ['ED','ND']\n")
    space = run_hyper.read_space(str(params))
    assert space["G_rate"] == ("choice", [1e-4, 5e-4, 1.8e-3])
    assert space["type"] == ("choice", ["ED", "ND"])
