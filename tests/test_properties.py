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


def test_tiktok_paper_default_is_the_validated_one_and_released_keeps_the_released_code():
    """TikTok's `paper` default drops the contrastive loss (the ablation's choice, variant_settings);
    `released` keeps the released code's weight; a value the user gives wins; the ablation's base file
    pins the weight it started from."""
    def resolved(**extra):
        return Config(model="MMSSL", dataset="tiktok", config_file_list=extra.pop("files", None),
                      config_dict={"data_path": "/nonexistent", **extra})["cl_rate"]

    assert resolved() == 0
    assert resolved(variant="released") == 0.03
    assert resolved(cl_rate=0.5) == 0.5
    assert resolved(files=[str(Path(__file__).resolve().parent.parent / "properties" / "ablation_cap.yaml")]) == 0.03
    assert Config(model="MMSSL", dataset="amazon-baby", config_dict={"data_path": "/nonexistent"})["cl_rate"] == 0.03


@pytest.mark.parametrize("settings, message", [
    ({"paper": 0}, "must map a variant"),
    ({"papr": {"cl_rate": 0}}, r"unknown variant\(s\) \['papr'\]"),
])
def test_bad_variant_settings_are_refused(settings, message):
    from recbole_mmssl.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        Config(model="MMSSL", dataset="tiktok", config_dict={"data_path": "/nonexistent", "variant_settings": settings})
