"""predict / full_sort_predict for models that score by a dot product of user and item tables.

A model defines ``score_tables()`` -> (user table (U, d), item table (I, d)); scores are
``user[u] . item[i]``. In eval mode the tables are computed once and cached until training resumes
or weights are loaded (RecBole's evaluator calls ``full_sort_predict`` once per user batch), so
evaluation costs one forward pass plus (batch users x all items) products: nothing users x items is
ever materialised beyond the batch RecBole asks for.
"""

import torch


class DotProductScores:
    """Mixin placed before ``GeneralRecommender``: cached tables, RecBole's two prediction calls."""

    _score_cache = None

    def score_tables(self):
        raise NotImplementedError

    def _tables(self):
        if self.training:
            return self.score_tables()
        if self._score_cache is None:
            with torch.no_grad():
                user, item = self.score_tables()
            self._score_cache = (user.detach(), item.detach())
        return self._score_cache

    def predict(self, interaction):
        user, item = self._tables()
        return (user[interaction[self.USER_ID]] * item[interaction[self.ITEM_ID]]).sum(-1)

    def full_sort_predict(self, interaction):
        """Scores of every item (padding 0 included, RecBole masks it) for each batch user, flattened."""
        user, item = self._tables()
        return (user[interaction[self.USER_ID]] @ item.t()).view(-1)

    def train(self, mode=True):
        self._score_cache = None
        return super().train(mode)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        self._score_cache = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
