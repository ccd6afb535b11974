"""MultimodalDataset (and its sequential twin): RecBole Datasets that also hold dense per-modality item features.

The features are deliberately kept out of RecBole's ``item_feat``: RecBole would join every
feature row into every batch (about 12x slower with 4,096-d vectors) and its filters would drop the
interactions of items that have no feature row. Instead each ``<dataset>.<modality>_feat`` atomic
file is parsed once (through the parse cache), aligned to RecBole's internal item ids and stored as

* ``modality_names``: list of modality names, in use order;
* ``modality_features[name]``: float32 tensor (item_num, dim); row 0 (RecBole's padding id) is zero;
* ``modality_masks[name]``: bool tensor (item_num,), True where the item has a feature row.

These plain attributes survive ``copy()`` and therefore RecBole's split into train/valid/test.
``MultimodalSequentialDataset`` is the same on RecBole's SequentialDataset (rows of history and
target, as the ``unisrec`` converter writes them), for sequential models such as MISSRec.
"""

import glob
import os

import numpy as np
import pandas as pd
import torch
from recbole.data.dataset import Dataset, SequentialDataset

from recbole_mmssl.data.atomic_check import check_atomic_files
from recbole_mmssl.data.atomic_io import FEATURE_SUFFIX, feature_file_name
from recbole_mmssl.data.cache import load_feature_file
from recbole_mmssl.errors import DataError, NotMultimodalError, shown
from recbole_mmssl.data.knn import cached_knn

PREPARE_HINT = ("convert a source with features (`python -m recbole_mmssl.data.convert hkuds|mmrec "
                "SRC --name NAME --out DIR`) or encode item text (`python -m "
                "recbole_mmssl.data.features text ...`)")


def find_feature_files(folder, dataset_name):
    """Map modality name -> path for every ``<dataset_name>.<modality>_feat`` file in ``folder``."""
    prefix, found = f"{dataset_name}.", {}
    for path in glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(prefix)}*{FEATURE_SUFFIX}")):
        name = os.path.basename(path)[len(prefix): -len(FEATURE_SUFFIX)]
        if name and "." not in name and os.path.isfile(path):
            found[name] = path
    return dict(sorted(found.items()))


def require_modalities(dataset, n_min=1):
    """Raise a DataError unless ``dataset`` carries at least ``n_min`` modalities."""
    names = getattr(dataset, "modality_names", None)
    if names is None:
        raise NotMultimodalError(dataset)
    if len(names) < n_min:
        raise DataError(
            dataset.dataset_path,
            f"dataset {dataset.dataset_name!r} has {len(names)} modality feature file(s) "
            f"({', '.join(names) or 'none: it is interactions-only'}), but at least {n_min} are "
            f"needed (files named {dataset.dataset_name}.<modality>{FEATURE_SUFFIX})",
            f"features are missing: {PREPARE_HINT}; or run an interactions-only model",
        )


class ModalityFeatures:
    """The modality loading shared by the general and the sequential dataset (placed before RecBole's class)."""

    def _load_data(self, token, dataset_path):
        check_atomic_files(self.config, dataset_path, token)  # what RecBole would misread, refused first
        super()._load_data(token, dataset_path)

    def _data_processing(self):
        self._source_item_tokens = self._item_tokens_before_filtering()
        super()._data_processing()
        if self.benchmark_filename_list is not None:
            self._warn_unseen_in_train()
        self._load_modalities()
        del self._source_item_tokens

    def _item_tokens_before_filtering(self):
        """Item tokens as loaded, so features of items removed by RecBole's filters are not errors."""
        parts = [self.inter_feat[self.iid_field].astype(str).to_numpy()]
        if self.item_feat is not None:
            parts.append(self.item_feat[self.iid_field].astype(str).to_numpy())
        return pd.Index(np.unique(np.concatenate(parts)))

    def _warn_unseen_in_train(self):
        """Valid/test users and items absent from train are kept; say how many (as RecBole would)."""
        n_train = self.file_size_list[0]
        inter = self.inter_feat
        for field, kind in ((self.uid_field, "user"), (self.iid_field, "item")):
            ids = inter[field].to_numpy()
            unseen = np.setdiff1d(np.unique(ids[n_train:]), ids[:n_train])
            if len(unseen):
                example = self.field2id_token[field][unseen[0]]
                self.logger.warning(
                    f"{len(unseen)} {kind}(s) of the {'/'.join(self.benchmark_filename_list[1:])} "
                    f"files of {self.dataset_name} do not occur in its "
                    f"{self.benchmark_filename_list[0]} file (e.g. {kind} {shown(example)}); they are "
                    f"kept with ids but get no training interactions."
                )

    def _requested_modalities(self):
        """Modality names in use order: config ``modalities`` or every feature file found."""
        found = find_feature_files(self.dataset_path, self.dataset_name)
        requested = self.config["modalities"]
        if requested is None:
            return list(found), found
        if isinstance(requested, str):
            requested = [m.strip() for m in requested.split(",") if m.strip()]
        requested = [str(m) for m in requested]
        if len(set(requested)) != len(requested):
            raise DataError(self.dataset_path, f"config `modalities` lists a modality twice: "
                                               f"{requested}", "list each modality once")
        missing = [m for m in requested if m not in found]
        if missing and not found:
            raise DataError(
                self.dataset_path,
                f"no modality feature file (<dataset>.<modality>_feat): {self.dataset_name} holds interactions "
                f"only, and {self.config['model']} needs item features (config `modalities`: {requested})",
                f"{PREPARE_HINT}; models without features (e.g. --model=LightGCN) run on this folder as it is",
            )
        if missing:
            raise DataError(
                os.path.join(self.dataset_path, feature_file_name(self.dataset_name, missing[0])),
                f"config `modalities` names {missing} but there is no such feature file; feature "
                f"files found: {[os.path.basename(p) for p in found.values()] or 'none'}",
                f"set `modalities` to some of {list(found)} (or null for all), or {PREPARE_HINT}",
            )
        return requested, found

    def _load_modalities(self):
        names, found = self._requested_modalities()
        allow_missing = bool(self.config["allow_missing_features"])
        use_cache = self.config["feature_cache"] is not False
        self.modality_names, self.modality_features, self.modality_masks = [], {}, {}
        for name in names:
            path = found[name]
            modality, tokens, features = load_feature_file(
                path, self.iid_field, self.config["field_separator"] or "\t",
                self.config["seq_separator"] or " ", use_cache=use_cache)
            if modality != name:
                raise DataError(path, f"the header declares modality {modality!r} but the file "
                                      f"name says {name!r}",
                                f"rename the file or its column to {name}{FEATURE_SUFFIX}")
            aligned, mask = self._align(path, tokens, features, allow_missing)
            self.modality_names.append(name)
            self.modality_features[name] = torch.from_numpy(aligned)
            self.modality_masks[name] = torch.from_numpy(mask)
            self.logger.info(f"Modality {name!r}: {aligned.shape[1]}-d features for "
                             f"{int(mask.sum())} of {self.item_num - 1} items from {path}")
        if not names:
            self.logger.info(f"No modality features for {self.dataset_name} (interactions only).")

    def _align(self, path, tokens, features, allow_missing):
        """Reorder feature rows to internal item ids; row 0 and featureless items stay zero."""
        id_token = self.field2id_token[self.iid_field]
        ids = pd.Index(id_token[1:]).get_indexer(pd.Index(tokens)) + 1  # 0 = not an item
        unknown = ids == 0
        if unknown.any():
            stray = ~pd.Index(tokens)[unknown].isin(self._source_item_tokens)
            if stray.any():
                example = np.asarray(tokens)[unknown][stray][0]
                raise DataError(
                    path,
                    f"{int(stray.sum())} feature row(s) belong to items that are not in the "
                    f"interactions of {self.dataset_name}, e.g. item {shown(example)}",
                    "write feature rows only for the dataset's item tokens (the converter does), "
                    "or remove those rows",
                )
            self.logger.info(f"{int(unknown.sum())} row(s) of {path} belong to items removed by "
                             f"RecBole's filtering; they are ignored.")
        aligned = np.zeros((self.item_num, features.shape[1]), dtype=np.float32)
        aligned[ids[~unknown]] = features[~unknown]
        mask = np.zeros(self.item_num, dtype=bool)
        mask[ids[~unknown]] = True
        n_missing = self.item_num - 1 - int(mask.sum())
        if n_missing:
            example = id_token[1:][~mask[1:]][0]
            if not allow_missing:
                raise DataError(
                    path,
                    f"{n_missing} of {self.item_num - 1} items have no feature row, e.g. item "
                    f"{shown(example)}",
                    "add their rows, or set `allow_missing_features: True` to keep them with "
                    "zero features (modality_masks False)",
                )
            self.logger.warning(f"{n_missing} of {self.item_num - 1} items have no row in {path} "
                                f"(e.g. item {shown(example)}); they get zero features and mask False.")
        return aligned, mask


class ModelInputs:
    """What a dataset hands a multimodal model: its features as device tensors and the k-NN graphs of
    them (built once and cached beside the feature files), so that models read no files."""

    def modality_tensors(self, device):
        """(names, features, masks) on ``device``: per modality a float32 (n_items, dim) tensor and a bool
        (n_items,) mask. Row 0 is RecBole's padding item (zeros, mask False); a False mask marks an
        item without a feature row (``allow_missing_features``), which models keep out of anything
        learned from features."""
        require_modalities(self)
        names = list(self.modality_names)
        features = {n: self.modality_features[n].float().to(device) for n in names}
        masks = {n: self.modality_masks[n].to(device).bool() for n in names}
        return names, features, masks

    def modality_knn(self, modality, k, device, use_cache=True, chunk_rows=None):
        """Edge list (rows, cols, cosine) of the k-NN item graph of one modality's raw features, computed
        on ``device`` (recbole_mmssl.data.knn: the neighbour rule and the cache)."""
        features = self.modality_features[modality].float().to(device)
        mask = self.modality_masks[modality].to(device).bool()
        return cached_knn(self.dataset_path, self.dataset_name, modality, features, mask, k,
                          use_cache=use_cache, chunk_rows=chunk_rows)


class MultimodalDataset(ModelInputs, ModalityFeatures, Dataset):
    """RecBole Dataset plus aligned dense modality features (see the module docstring)."""


class MultimodalSequentialDataset(ModelInputs, ModalityFeatures, SequentialDataset):
    """RecBole SequentialDataset plus aligned dense modality features, for sequential models.

    An item of a validation or test row counts as seen in training when it occurs anywhere in the
    training rows, as a target or in a history (UniSRec's files give every user's first item only
    as history).
    """

    def _warn_unseen_in_train(self):
        n_train = self.file_size_list[0]
        inter = self.inter_feat
        list_field = self.iid_field + self.config["LIST_SUFFIX"]
        seen = set(inter[self.iid_field].to_numpy()[:n_train].tolist())
        if list_field in inter:
            for seq in inter[list_field].to_numpy()[:n_train]:
                seen.update(np.asarray(seq).tolist())
        rest = set(inter[self.iid_field].to_numpy()[n_train:].tolist())
        unseen = sorted(rest - seen)
        if unseen:
            example = self.field2id_token[self.iid_field][unseen[0]]
            self.logger.warning(
                f"{len(unseen)} item(s) of the {'/'.join(self.benchmark_filename_list[1:])} files of "
                f"{self.dataset_name} never occur in its {self.benchmark_filename_list[0]} rows (e.g. item "
                f"{example!r}); they keep their ids and features but get no training signal.")
