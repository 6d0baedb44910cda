"""Dynamic few-shot for the small tier: exemplars chosen by similarity to the routing embedding.

Nothing heavy is imported here: the serving runtime lives in `router.fewshot.runtime`.
"""

from router.fewshot.exemplars import Exemplar, ExemplarStore, Match, Query, Selection, estimate_tokens, inject
from router.fewshot.settings import FewShotSettings

__all__ = [
    "Exemplar",
    "ExemplarStore",
    "FewShotSettings",
    "Match",
    "Query",
    "Selection",
    "estimate_tokens",
    "inject",
]
