"""benchmarks/sequential_report.py: the Scientific table's rows, finished and interrupted."""

from benchmarks.sequential_report import METRICS, summarise, table_lines


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
