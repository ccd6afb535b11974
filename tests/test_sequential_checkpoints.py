"""RecBole's feature-aware sequential models (FDSA) save and resume through the plugin's checkpoints."""

from recbole_mmssl.checkpoint import last_checkpoint_path, load_checkpoint
from recbole_mmssl.quick_start import run_recbole_mmssl
from tests._seq_util import seq_config_dict, user_histories, write_seq_dataset


def write_item_attributes(folder, name="tinyseq"):
    """An item file with a category path and a brand per item, as the Scientific converter writes."""
    items = sorted({i for h in user_histories().values() for i in h})
    with open(folder / name / f"{name}.item", "w") as f:
        f.write("item_id:token\tcategory:token_seq\tbrand:token\n")
        f.writelines(f"{item}\tc{n % 3} c{n % 5}\tb{n % 4}\n" for n, item in enumerate(items))


def test_fdsa_checkpoints_hold_tensors_only_and_a_run_resumes_from_them(tmp_path):
    write_seq_dataset(tmp_path)
    write_item_attributes(tmp_path)
    settings = dict(load_col={"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id", "category", "brand"]},
                    selected_features=["category", "brand"], train_neg_sample_args=None)
    full = run_recbole_mmssl("FDSA", "tinyseq", config_dict=seq_config_dict(tmp_path, epochs=2, **settings))
    state = load_checkpoint(full["saved_model_file"])  # weights_only: a pickled module would be refused
    assert "feature_embed_layer" not in state["other_parameter"]
    assert any(k.startswith("feature_embed_layer.") for k in state["state_dict"])  # its tensors are saved
    first = run_recbole_mmssl("FDSA", "tinyseq", config_dict=seq_config_dict(tmp_path, epochs=1, **settings))
    resumed = run_recbole_mmssl("FDSA", "tinyseq", config_dict=seq_config_dict(tmp_path, epochs=2, **settings),
                                resume=last_checkpoint_path(first["saved_model_file"]))
    assert [e["epoch"] for e in resumed["epochs"]] == [0, 1]  # the checkpoint carried epoch 0
    assert resumed["test_result"] == full["test_result"]
