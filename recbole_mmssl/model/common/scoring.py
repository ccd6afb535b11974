"""Evaluation caches, and predict / full_sort_predict for models that score by a dot product of user
and item tables.

RecBole's evaluator calls ``full_sort_predict`` once per user batch; what a model scores with (its
propagated tables, MISSRec's adapted item vectors) is the same for every batch, so :class:`EvalCache`
computes it once per evaluation and drops it when training resumes, weights are loaded, or the model
says its inputs changed (MMSSL's modality graphs). A model that scores by ``user[u] . item[i]``
defines ``score_tables()`` -> (user table (U, d), item table (I, d)) and gets RecBole's two prediction
calls from :class:`DotProductScores`: evaluation costs one forward pass plus (batch users x all items)
products, and nothing users x items is materialised beyond the batch RecBole asks for.
"""

import torch


class EvalCache:
    """Mixin placed before RecBole's recommender class: one value computed per evaluation."""

    _eval_cache = None

    def eval_cached(self, compute):
        """``compute()`` in training mode; in eval mode its result, computed once without gradients."""
        if self.training:
            return compute()
        if self._eval_cache is None:
            with torch.no_grad():
                self._eval_cache = compute()
        return self._eval_cache

    def drop_eval_cache(self):
        """Forget the cached value (the model's inputs changed): the next evaluation call computes it."""
        self._eval_cache = None

    def train(self, mode=True):
        self._eval_cache = None
        return super().train(mode)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        self._eval_cache = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class DotProductScores(EvalCache):
    """Mixin placed before ``GeneralRecommender``: cached tables, RecBole's two prediction calls."""

    def score_tables(self):
        raise NotImplementedError

    def predict(self, interaction):
        user, item = self.eval_cached(self.score_tables)
        return (user[interaction[self.USER_ID]] * item[interaction[self.ITEM_ID]]).sum(-1)

    def full_sort_predict(self, interaction):
        """Scores of every item (padding 0 included, RecBole masks it) for each batch user, flattened."""
        user, item = self.eval_cached(self.score_tables)
        return (user[interaction[self.USER_ID]] @ item.t()).view(-1)
