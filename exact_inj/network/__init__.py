"""Untrusted search for networks: stage by stage (layerwise), lifted and
sampled witnesses, folds, and the end-to-end route over activation pieces.
Every answer leaves through :meth:`exact_inj.run.Run.certified`.

The stage helpers that used to live in ``exact_inj.network`` (``stages``,
``compose``, ``image_box``, ...) are in :mod:`exact_inj.model.stages` now;
they are re-exported here for one release so that old imports keep working.
"""

from ..model.stages import (
    Stage,
    compose,
    contains,
    degenerate_rows,
    image_box,
    linear_rank,
    linear_witness,
    pair_along,
    stages,
)
from .decide import decide_network
from .witness import lifted_witness, narrow_witness, singular_piece_witness

__all__ = [
    "Stage", "compose", "contains", "decide_network", "degenerate_rows", "image_box", "lifted_witness",
    "linear_rank", "linear_witness", "narrow_witness", "pair_along", "singular_piece_witness", "stages",
]
