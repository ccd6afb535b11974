"""benchmarks/sequential_report.py: the Scientific table's rows, finished and interrupted."""

from benchmarks.sequential_report import METRICS, chosen_id_row, goal_lines, summarise, table_lines


def _run(label, seed, status, recall):
    result = {m: recall for m in METRICS}
    return {"label": label, "seed": seed, "status": status, "test_result": result,
            "best_valid_result": {"ndcg@10": recall / 2}, "best_epoch": seed - 2020, "seconds_per_epoch": 8.0,
            "peak_rss_mb": None, "code": "abc"}


def test_an_interrupted_row_shows_its_best_epoch_so_far_apart_from_the_finished_seeds():
    runs = [_run("GRU4Rec", 2022, "ok", 0.08), _run("GRU4Rec", 2023, "ok", 0.10),
            _run("GRU4Rec (interrupted)", 2024, "interrupted", 0.05)]
    table = summarise(runs)
    assert table["GRU4Rec"]["seeds"] == [2022, 2023] and abs(table["GRU4Rec"]["recall@10"][0] - 0.09) < 1e-12
    assert table["GRU4Rec (interrupted)"]["seeds"] == [2024]
    assert table["GRU4Rec (interrupted)"]["recall@10"] == [0.05, None]
    line = [row for row in table_lines(table) if row.startswith("| GRU4Rec (interrupted)")][0]
    assert line.startswith("| GRU4Rec (interrupted) | 1 | 0.0500 |") and "[4]" in line


def test_an_interrupted_missrec_row_gets_its_readable_name_with_the_suffix():
    runs = [_run("MISSRec:train_stage=inductive_ft", 2022, "ok", 0.15),
            _run("MISSRec:train_stage=inductive_ft (interrupted)", 2024, "interrupted", 0.16)]
    names = {label: row["name"] for label, row in summarise(runs).items()}
    assert names == {"MISSRec:train_stage=inductive_ft": "MISSRec (no IDs)",
                     "MISSRec:train_stage=inductive_ft (interrupted)": "MISSRec (no IDs) (interrupted)"}


def _scored(label, seed, recall, valid):
    run = _run(label, seed, "ok", recall)
    run["best_valid_result"] = {"ndcg@10": valid}
    return run


def test_the_goal_lines_speak_for_the_id_scoring_chosen_on_validation_not_on_test():
    pre = "MISSRec:pretrained=/w/pre.pth;id_scoring=mixed"
    runs = [_scored("MISSRec", 2022, 0.125, 0.060),  # better on test, worse on validation
            _scored("MISSRec:id_scoring=mixed", 2022, 0.120, 0.070),
            _scored(pre, 2022, 0.124, 0.071), _scored("SASRec", 2022, 0.100, 0.060)]
    table = summarise(runs)
    assert table["MISSRec:id_scoring=mixed"]["name"] == "MISSRec (IDs, mixed ID score)"
    assert table[pre]["name"] == "MISSRec (IDs, mixed ID score), pre-trained"
    assert chosen_id_row(table) == "MISSRec:id_scoring=mixed"
    lines = goal_lines({"scientific": table})
    assert lines[0].startswith("- MISSRec with IDs from scratch on full/ (MISSRec (IDs, mixed ID score): the better "
                               "of 2 ID scorings on validation NDCG@10, 0.0700, 0.0600): test R@10 0.1200, 93.6%")
    assert "- scientific: MISSRec (IDs, mixed ID score) R@10 0.1200 vs SASRec 0.1000 (mean); higher on 1 of 1" in lines[1]
    # the pre-trained row is set against the scratch row of its own scoring
    assert lines[2] == ("- scientific: MISSRec (IDs, mixed ID score), pre-trained R@10 0.1240 vs from scratch 0.1200 "
                        "(+0.0040); N@10 0.1240 vs 0.1200.")


def test_a_comparison_of_scientific_leaves_the_sequential_report_in_place(tmp_path, capsys):
    """results/scientific.* is this script's report over several run folders: a compare.py call on the
    same dataset (training or --report-only) must not replace it with its one-folder table."""
    import json

    from benchmarks import compare, sequential_report

    runs_dir = tmp_path / "runs" / "scientific"
    runs_dir.mkdir(parents=True)
    for seed in (2022, 2023):
        (runs_dir / f"SASRec__seed{seed}.json").write_text(json.dumps(_run("SASRec", seed, "ok", 0.1)))
    sequential_report.main(["--results", str(tmp_path)])
    written = {ext: (tmp_path / f"scientific{ext}").read_bytes() for ext in (".md", ".json", ".png")}
    assert json.loads(written[".json"])["produced_by"] == "benchmarks/sequential_report.py"
    assert compare.main(["--dataset=scientific", "--data_path", str(tmp_path), "--results", str(tmp_path),
                         "--report-only"]) == 0
    assert {ext: (tmp_path / f"scientific{ext}").read_bytes() for ext in written} == written
    assert "written by benchmarks/sequential_report.py, left as they are" in capsys.readouterr().out
