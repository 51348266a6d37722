"""Names that several packages must spell the same way (FORMATS.md).

- PAIR_SOURCES: the two ProtoPShare similarities an atlas's `pairs` are drawn from
  (atlas.json `pairs.<source>`, consistency study items, `--similarity` of merge-prune);
- SIMILARITIES: the one spelling of each prototype similarity (`model.similarity` of
  model configs, checkpoints and atlases; core.model.similarity.ACTIVATIONS is keyed by
  them): "focal" (ProtoPool's focal similarity, the paper's), "protopnet" (ProtoPNet's
  max activation: ProtoPool "without focal similarity"), "focal-code" (the authors'
  code's form of focal). OLD_SIMILARITY_NAMES are spellings older files may hold; they
  are read as the canonical name (`canonical_similarity`) and never written;
- STUDY_ID_PATTERN / STUDY_ID_RE: what a study id may be (spec `id`, study folders,
  participant links): a letter or digit, then up to 63 letters, digits, `_` or `-`,
  so an id is also a safe folder name and URL parameter.
"""
from __future__ import annotations

import re

PAIR_SOURCES: tuple[str, str] = ("data_dependent", "euclidean")
# further pair sources an atlas may carry (`pairs.<name>`) for consistency studies that
# declare them (spec `sources`): lower-case letters, digits and `_`
PAIR_SOURCE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

SIMILARITIES: tuple[str, ...] = ("focal", "protopnet", "focal-code")
OLD_SIMILARITY_NAMES: dict[str, str] = {"protopnet-sim": "protopnet", "nofocal": "protopnet",
                                        "no-focal": "protopnet", "max": "protopnet"}


def canonical_similarity(name: str) -> str:
    """The one spelling of a similarity name (an old spelling migrated; others unchanged,
    so an unknown name still reaches the check that names the known ones)."""
    return OLD_SIMILARITY_NAMES.get(name, name)


STUDY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
STUDY_ID_RE = re.compile(STUDY_ID_PATTERN)


def is_study_id(value: object) -> bool:
    """Whether `value` is a valid study id (a str matching STUDY_ID_RE)."""
    return isinstance(value, str) and STUDY_ID_RE.match(value) is not None
