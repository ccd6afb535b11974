"""The real TikTok data (../shared/data/tiktok): converted counts and features equal to the .npy."""

import numpy as np

from recbole_mmssl.data.convert import convert
from recbole_mmssl.data.dataset import MultimodalDataset
from tests._data_util import recbole_config


def test_tiktok_conversion_counts_and_features(tmp_path, shared_data_dir, caplog):
    src = shared_data_dir / "tiktok"
    summary = convert("hkuds", str(src), "tiktok", tmp_path, progress=False)
    assert summary["users"] == 9308 and summary["items"] == 6710
    assert summary["interactions"] == {"train": 59541, "valid": 3051, "test": 6130}
    assert summary["modalities"] == {"audio": 128, "image": 128}

    ds = MultimodalDataset(recbole_config(tmp_path, "tiktok", modalities=["image", "audio"]))
    assert (ds.user_num, ds.item_num, ds.inter_num) == (9309, 6711, 59541 + 3051 + 6130)
    assert ds.file_size_list == [59541, 3051, 6130]
    assert "10 user(s) of the valid/test files of tiktok do not occur" in caplog.text
    sample = np.random.default_rng(0).choice(6710, size=200, replace=False)
    ids = ds.token2id("item_id", [str(i) for i in sample])
    for name in ("image", "audio"):
        npy = np.load(src / f"{name}_feat.npy").astype(np.float32)
        assert np.array_equal(ds.modality_features[name][ids].numpy(), npy[sample])
        assert bool(ds.modality_masks[name][1:].all())
