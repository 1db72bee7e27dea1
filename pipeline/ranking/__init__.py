"""Rankers that score codes and tests from the pass matrix.

``make_ranker(config)`` builds the ranker a job asks for; ``pipeline.skip_rules`` decides
first whether a problem can be ranked at all. Pure numpy: no I/O, no Ray.

    >>> import numpy as np
    >>> from pipeline.config import RankingConfig
    >>> ranker = make_ranker(RankingConfig(ranker="passcount"))
    >>> ranker.rank(np.array([[True, False], [True, True]]), [1, 1], [1, 1]).order
    [1, 0]
"""

from __future__ import annotations

from pipeline.ranking.base import (
    Ranker,
    binary_matrix,
    make_ranker,
    tie_break_order,
)
from pipeline.ranking.codet import CodeTRanker, top_group
from pipeline.ranking.hits import HitsRanker
from pipeline.ranking.pagerank import PageRankRanker
from pipeline.ranking.passcount import PassCountRanker

__all__ = [
    "CodeTRanker",
    "HitsRanker",
    "PageRankRanker",
    "PassCountRanker",
    "Ranker",
    "binary_matrix",
    "make_ranker",
    "tie_break_order",
    "top_group",
]
