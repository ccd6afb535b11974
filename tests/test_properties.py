"""The example configs of properties/ name only keys that their model (MMSSL or MISSRec), the plugin or RecBole know."""

import sys
from pathlib import Path

import pytest
import yaml

from recbole_mmssl.config import Config

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "properties").glob("*.yaml"))


@pytest.fixture(autouse=True)
def no_cli_args(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"mmssl_released.yaml", "quick_look.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_keys_are_known_and_applied(path):
    values = yaml.safe_load(path.read_text())
    assert values, f"{path.name} is empty"
    model, dataset = ("MISSRec", "scientific") if path.name.startswith("missrec") else ("MMSSL", "tiktok")
    base = Config(model=model, dataset=dataset, config_dict={"data_path": "/nonexistent"})
    unknown = [key for key in values if key not in base.final_config_dict]
    assert not unknown, f"{path.name}: unknown keys {unknown}"
    config = Config(model=model, dataset=dataset, config_file_list=[str(path)],
                    config_dict={"data_path": "/nonexistent"})
    for key, value in values.items():
        if key == "eval_args":  # RecBole expands `mode` into one value per phase
            assert {k: v for k, v in config[key].items() if k != "mode"} == \
                {k: v for k, v in value.items() if k != "mode"}
            continue
        assert config[key] == value, key
