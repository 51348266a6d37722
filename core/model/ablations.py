"""ProtoPool's ablations, named as the paper's Table 4 names them, each one switch.

A name maps to config overrides (`--set` form). The paper's rows (Rymarczyk et al.,
ECCV 2022, Table 4; the authors' README says how each was run):

- "full": focal similarity, Gumbel-softmax assignment, L_orth;
- "w/o L_orth": without the orthogonality loss (the code without --pp_ortho);
- "w/o Gumbel": softmax(q) at temperature 1 throughout training, hard assignment at
  test (the code without --pp_gumbel);
- "w/o Gumbel and L_orth": both;
- "w/o focal similarity": ProtoPNet's max activation instead of max - mean.

Ours, not the paper's (an honest name, docs/DEVIATIONS.md): "w/o Gumbel noise" trains
softmax(q / tau) under the annealed tau, the Gumbel trick without its noise.
"""
from __future__ import annotations

from core.errors import UserFacingError

TABLE4: dict[str, list[str]] = {
    "full": [],
    "w/o L_orth": ["loss.orthogonality=0"],
    "w/o Gumbel": ["model.assignment=softmax"],
    "w/o Gumbel and L_orth": ["model.assignment=softmax", "loss.orthogonality=0"],
    "w/o focal similarity": ["model.similarity=protopnet"],
}
OURS: dict[str, list[str]] = {
    "w/o Gumbel noise": ["model.assignment=softmax-annealed"],
}
ABLATIONS: dict[str, list[str]] = {**TABLE4, **OURS}


def ablation_overrides(name: str) -> list[str]:
    """The `--set` overrides of an ablation; an unknown name is one error line."""
    if name not in ABLATIONS:
        raise UserFacingError(f"--ablation: unknown ablation {name!r}; valid: "
                              + ", ".join(repr(n) for n in ABLATIONS))
    return list(ABLATIONS[name])
