"""benchmarks/ablation.py: each row picks its run, the table compares on validation with the default."""

import json

from benchmarks import ablation


def _run(label, valid, test, status="ok", epochs=20, best=4):
    return {"label": label, "seed": 2022, "status": status, "best_epoch": best,
            "best_valid_result": {"recall@20": valid}, "test_result": {"recall@20": test, "ndcg@20": test / 2},
            "valid_curve": [valid / 2] * (epochs - 1) + [valid], "seconds_per_epoch": 100.0,
            "hardware": "CPU test", "threads": 1, "code": "abc1234", "config": {"stopping_step": 15, "epochs": 100}}


def test_report_rows_deltas_and_reading(tmp_path):
    runs = tmp_path / "runs" / "tiktok"
    runs.mkdir(parents=True)
    records = [
        _run("MMSSL:graph_window=40", 0.0774, 0.0770),  # the default row's older label
        _run("MMSSL:cl_rate=0", 0.0872, 0.0808),
        _run("MMSSL:graph_window=1", 0.0700, 0.0600, status="interrupted"),
        {**_run("MMSSL:G_rate=0", 0.09, 0.09), "seed": 2023},  # another seed: not the ablation's
    ]
    for n, record in enumerate(records):
        (runs / f"r{n}.json").write_text(json.dumps(record))
    ablation.report(str(tmp_path))
    text = (tmp_path / "tiktok_ablation.md").read_text()
    assert "| 1 | MMSSL:graph_window=40 |" in text and "0.0774 (4) | - |" in text
    assert "| 2 | MMSSL:cl_rate=0 |" in text and "| +0.0098 |" in text  # 0.0872 - 0.0774 on validation
    assert "| 3 | MMSSL:graph_window=1 | modality graphs" in text and "| interrupted |" in text
    assert "| 6 | MMSSL:G_rate=0 | no adversarial term" in text and "not run yet" in text.split("| 6 |")[1]
    assert "MMSSL:cl_rate=0 (no cross-modal contrastive loss (InfoNCE weight 0)) raises validation Recall@20 by 0.0098" in text
    assert "Best finished row on validation: **MMSSL:cl_rate=0** (0.0872" in text
    assert "Not finished yet: MMSSL:graph_window=1," in text
    data = json.loads((tmp_path / "tiktok_ablation.json").read_text())
    assert [r["run"]["label"] if r["run"] else None for r in data["rows"]][:3] == [
        "MMSSL:graph_window=40", "MMSSL:cl_rate=0", "MMSSL:graph_window=1"]
    assert (tmp_path / "tiktok_ablation.png").stat().st_size > 0
