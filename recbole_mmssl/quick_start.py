"""Train and evaluate MMSSL or any RecBole model under one protocol (RecBole's quick start, plugin-aware).

RecBole's ``run_recbole`` cannot find plugin models and loads checkpoints that torch>=2.6 refuses;
this module is the same flow with the plugin's Config, model/trainer lookup and dataset checks. The
order is chosen so that bad input stops a run before it costs anything: the config is checked before
any data is loaded, a checkpoint to resume is checked against the model and dataset before the data
and against the data and every setting before anything is written, and ``topk`` against the number of
items before the first epoch.
"""

import logging
import math
import sys
import time
from logging import getLogger

import numpy as np

from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed, set_color

from recbole_mmssl.checkpoint import dataset_fingerprint, load_checkpoint
from recbole_mmssl.data.atomic_check import check_atomic_files
from recbole_mmssl import threads
from recbole_mmssl.config import Config
from recbole_mmssl.errors import ConfigError, DataError, shown
from recbole_mmssl.registry import get_model, get_trainer


def create_dataset(config):
    """The dataset for ``config``: prepared data only, multimodal when the model needs features.

    Never falls through to RecBole's own download (its amazon-baby has ratings only): a missing
    folder is an error naming the convert command. The embedded default (ml-100k) is built on first use.
    """
    from recbole.utils import ModelType

    from recbole_mmssl.data.dataset import MultimodalDataset, MultimodalSequentialDataset
    from recbole_mmssl.data.prepare import ensure_prepared

    ensure_prepared(config)
    if getattr(get_model(config["model"]), "requires_modalities", False):
        if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            dataset = MultimodalSequentialDataset(config)  # both check their atomic files themselves
        else:
            dataset = MultimodalDataset(config)
    else:
        check_atomic_files(config)
        dataset = recbole_create_dataset(config)
    if config["MODEL_TYPE"] != ModelType.SEQUENTIAL or samples_negatives(config):
        refuse_users_with_every_item(dataset)
    return dataset


def samples_negatives(config):
    """Whether training draws negative items (general models always do; sequential ones only with a
    pairwise loss)."""
    args = config["train_neg_sample_args"] or {}
    return args.get("distribution", "none") != "none"


def refuse_users_with_every_item(dataset):
    """No negative item can be sampled for a user who interacted with every item (RecBole's sampler
    raises deep inside data preparation, and there is nothing left to recommend them): refuse at load."""
    inter = dataset.inter_feat
    users, items = np.asarray(inter[dataset.uid_field]), np.asarray(inter[dataset.iid_field])
    n_items = dataset.item_num - 1  # internal id 0 is RecBole's padding
    pairs = np.unique(users.astype(np.int64) * dataset.item_num + items.astype(np.int64))
    counts = np.bincount(pairs // dataset.item_num, minlength=dataset.user_num)
    full = np.flatnonzero(counts >= n_items)
    if len(full):
        token = dataset.field2id_token[dataset.uid_field][full[0]]
        raise DataError(
            dataset.dataset_path,
            f"user {shown(token)} has interacted with every one of the {n_items} items"
            + (f" (and {len(full) - 1} other user(s) too)" if len(full) > 1 else "")
            + ": no negative item can be sampled for them, and none is left to recommend",
            "remove that user's interactions (or add items), or filter such users with `user_inter_num_interval`",
        )


def check_topk(config, dataset):
    """Refuse cut-offs larger than the number of items now, not with a crash after the first epoch."""
    n_items = dataset.item_num - 1  # internal id 0 is RecBole's padding
    topk = config["topk"]
    too_big = [k for k in topk if k > n_items]
    if not too_big:
        return
    kept = [k for k in topk if k <= n_items] or [n_items]
    raise ConfigError(
        "topk",
        f"{too_big} exceed(s) the {n_items} items of dataset {config['dataset']!r}: a top-k list cannot be "
        "longer than the item set",
        f"pass --topk=[{','.join(map(str, kept))}] (at most {n_items}) and a valid_metric at one of them, "
        f"e.g. --valid_metric={config['valid_metric'].split('@')[0]}@{max(kept)}",
        config.source_of("topk") or "default",
    )


def check_resume_target(state, config, path):
    """Before the data is loaded: refuse a checkpoint of another model or dataset (cheap, names both)."""
    diffs = [f"{key}: the checkpoint's is {state['config'].get(key)!r}, this run's is {config[key]!r}"
             for key in ("model", "dataset") if state["config"].get(key) != config[key]]
    if diffs:
        raise DataError(path, "cannot continue this run: " + "; ".join(diffs),
                        f"pass --model={state['config'].get('model')} --dataset={state['config'].get('dataset')} "
                        "to continue that run, or leave out --resume to start a new one")


#: Keys :func:`adapt_to_dataset` may set from the data: a run records the adapted value, its spec resolves to
#: the default, so they are no sign of changed settings (benchmarks/stale_runs.py).
ADAPTED_TO_DATA = {"num_clusters"}


def adapt_to_dataset(config, dataset):
    """Adjust built-in defaults that cannot work on a small dataset, saying so in the log."""
    if config["model"] == "NCL" and config["num_clusters"]:
        n_points = min(dataset.user_num, dataset.item_num) - 1
        if config["num_clusters"] > n_points:
            capped = max(2, n_points // 10)
            getLogger().warning(
                f"NCL: num_clusters={config['num_clusters']} exceeds the {n_points} users/items of "
                f"{config['dataset']}; capped to {capped} (about 10 points per cluster). "
                "Set --num_clusters to override."
            )
            config["num_clusters"] = capped


def best_epoch(epochs):
    """The epoch whose checkpoint RecBole keeps: the highest validation score, the *last* on a tie.

    RecBole's ``early_stopping`` takes ``value >= best`` as an improvement (scores are rounded to
    four digits, so ties are common) and saves the model then; the test result is that epoch's.
    Unknown scores (NaN: epochs of a checkpoint written before it kept them) are passed over.
    """
    known = [e for e in epochs if not math.isnan(e["valid_score"])]
    if not known:
        return None
    best = max(e["valid_score"] for e in known)
    return [e["epoch"] for e in known if e["valid_score"] == best][-1]


def build(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, resume=None):
    """Config, data loaders, model and trainer for one run, seeded as RecBole does.

    ``cmd_args``: ``--key=value`` overrides. ``resume``: a checkpoint the trainer continues from
    (checked against the model and dataset before the data is loaded, against the data and every
    setting once the trainer exists).
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    cmd_args=cmd_args)
    state = None
    if resume:
        state = load_checkpoint(resume)
        check_resume_target(state, config, resume)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(threads.apply())  # once per run, before anything parallel (recbole_mmssl/threads.py)
    logger.info(config)
    for note in config.notes:
        logger.warning(note)
    data = create_dataset(config)
    logger.info(data)
    check_topk(config, data)
    adapt_to_dataset(config, data)
    fingerprint = dataset_fingerprint(data)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.dataset_fingerprint = fingerprint
    if state is not None:
        trainer.resume_checkpoint(resume, state=state)
    return config, (train_data, valid_data, test_data), model, trainer


def preflight(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
    """Check a run's config and data without training (for searches: before the first trial)."""
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    cmd_args=cmd_args)
    check_topk(config, create_dataset(config))
    return config


def run_recbole_mmssl(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, resume=None, callback_fn=None,
    breakdown_k=None, cmd_args=None, command_line=None,
):
    """Train on the train split, select the epoch on validation, evaluate on test (full ranking).

    Returns a dict with the best validation result, the test result, the per-epoch validation
    scores and times of the whole run (a resumed run's earlier epochs included, from its checkpoint),
    the checkpoint file of the selected epoch and, with ``breakdown_k``, the test
    metrics by user activity and item popularity (recbole_mmssl.breakdown). ``cmd_args`` are
    ``--key=value`` overrides; ``command_line`` (the argv of a command) lets Ctrl-C print the whole
    command that continues the run.
    """
    config, (train_data, valid_data, test_data), model, trainer = build(
        model, dataset, config_file_list, config_dict, cmd_args=cmd_args, resume=resume
    )
    trainer.command_line = command_line
    earlier_seconds = trainer.epoch_history.wall_seconds() if trainer.epoch_history is not None else 0.0
    started = time.time()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"], callback_fn=callback_fn
    )
    train_seconds = earlier_seconds + time.time() - started
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    groups = None
    if breakdown_k:
        from recbole_mmssl.breakdown import breakdown

        groups = breakdown(trainer, test_data, train_data._dataset, k=breakdown_k)
    logger = getLogger()
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result or {}),
        "epochs": [dict(e) for e in trainer.epoch_history.entries],
        "train_seconds": train_seconds,
        "saved_model_file": trainer.saved_model_file if saved else None,
        "breakdown": groups,
        "config": config,
        "trainer": trainer,
    }


def results_table(valid_result, test_result):
    """Metrics as a plain text table: one row per metric, validation and test columns."""
    names = list(test_result or valid_result or {})
    width = max([len(n) for n in names] + [len("metric")])
    lines = [f"{'metric':<{width}}  {'valid':>8}  {'test':>8}", "-" * (width + 20)]
    for name in names:
        valid = (valid_result or {}).get(name)
        test = (test_result or {}).get(name)
        fmt = lambda v: f"{v:8.4f}" if v is not None else f"{'-':>8}"  # noqa: E731
        lines.append(f"{name:<{width}}  {fmt(valid)}  {fmt(test)}")
    return "\n".join(lines)


def objective_function(config_dict=None, config_file_list=None, saved=False):
    """RecBole's HyperTuning objective, for plugin models too (validation drives the search)."""
    logger = getLogger()
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    config_dict = dict(config_dict or {})
    config_dict.setdefault("show_progress", False)
    result = run_recbole_mmssl(config_dict=config_dict, config_file_list=config_file_list, saved=saved)
    logging.basicConfig(level=logging.ERROR)
    return {
        "model": result["model"],
        "best_valid_score": result["best_valid_score"],
        "valid_score_bigger": result["valid_score_bigger"],
        "best_valid_result": result["best_valid_result"],
        "test_result": result["test_result"],
    }
