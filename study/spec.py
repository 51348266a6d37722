"""Study spec: the YAML a researcher writes, validated into a `Spec`.

Every problem is one `StudyError` naming the spec file and the dotted field, so a typo
never turns into a silently different study. Paths of atlases are relative to the spec
file. Unknown fields are errors too (a misspelt `item_per_version` must not be ignored);
`exclusions` is passed through untouched for `python -m study analyze --spec`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common.names import STUDY_ID_RE
from common.yamlfile import DuplicateKeyError, load_yaml
from study.analysis.plan import AnalysisPlan, parse_analysis_plan
from study.errors import StudyError
from study.kinds import KINDS, REGISTRY, kind_of
from study.wording import defaults_for
ORDERS = ("random", "latin-square")
LAYOUTS = ("side_by_side", "pair")
ID_RE = STUDY_ID_RE
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
# completion: finished; screen_out: failed the attention checks; no_consent: answered "I do not agree"
CODE_KINDS = ("completion", "screen_out", "no_consent")
TOP_FIELDS = {
    "id", "kind", "seed", "methods", "datasets", "pool_size", "items_per_version",
    "versions", "order", "same_images", "media", "wording", "attention", "codes",
    "recent_start_minutes", "exclusions", "analysis", "mixed_image_sets",
} | {f for k in REGISTRY.values() for f in k.spec_fields}   # a kind's own fields (study/kinds/)
# consistency: the pair sources compared (keys of the atlases' `pairs`), two by default
DEFAULT_SOURCES = ("data_dependent", "euclidean")
SOURCE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class MethodRef:
    """One atlas taking part in the study; `label` overrides the atlas's method label."""
    atlas: Path
    label: str | None


@dataclass(frozen=True)
class Attention:
    count: int = 0
    max_failures: int = 0


@dataclass(frozen=True)
class Media:
    layout: str = "side_by_side"
    max_side: int = 448
    patches_per_prototype: int = 3
    patch_size: int = 160


@dataclass
class Spec:
    path: Path
    id: str | None
    kind: str
    seed: int
    methods: list[MethodRef]
    datasets: list[str] | None
    pool_size: int
    items_per_version: int
    versions: int
    order: str
    same_images: bool
    media: Media
    wording: dict
    attention: Attention
    codes: dict[str, str | None]
    recent_start_minutes: int
    raw: dict = field(default_factory=dict)
    # data set names whose atlases may explain different image sets (study/build.py refuses otherwise)
    mixed_image_sets: list[str] = field(default_factory=list)
    analysis: AnalysisPlan = field(default_factory=AnalysisPlan)  # declared analysis (study.analysis.plan)
    sources: tuple[str, ...] = DEFAULT_SOURCES   # consistency: pair sources, compared two at a time
    kind_options: dict = field(default_factory=dict)   # a kind's own validated fields (study/kinds/)

    @property
    def choice_values(self) -> list[str]:
        """Valid answers: rating points as strings, or choice keys."""
        return kind_of(self.kind).choice_values(self.wording)


def _fail(path: Path, name: str, message: str) -> StudyError:
    return StudyError(f"{path}: field '{name}': {message}")


def _int(path, data, name, default, lo, hi=None) -> int:
    value = data.get(name.split(".")[-1], default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise _fail(path, name, f"must be an integer {bound} (got {value!r})")
    return value


def _check_keys(path, data, allowed, prefix=""):
    if not isinstance(data, dict):
        raise _fail(path, prefix.rstrip(".") or "(top level)", "must be a mapping")
    for key in data:
        if key not in allowed:
            raise _fail(path, f"{prefix}{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _methods(path: Path, value) -> list[MethodRef]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "methods", "must be a non-empty list of atlas folders")
    refs = []
    for i, entry in enumerate(value):
        name = f"methods[{i}]"
        if isinstance(entry, str):
            entry = {"atlas": entry}
        _check_keys(path, entry, {"atlas", "label"}, name + ".")
        atlas = entry.get("atlas")
        if not isinstance(atlas, str) or not atlas:
            raise _fail(path, name + ".atlas", "must be the path of an atlas folder")
        label = entry.get("label")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise _fail(path, name + ".label", f"must be a non-empty string (got {label!r})")
        atlas_path = Path(atlas)
        if not atlas_path.is_absolute():
            atlas_path = (path.parent / atlas_path)
        refs.append(MethodRef(atlas_path.resolve(), label))
    return refs


def _wording(path: Path, kind: str, value) -> dict:
    wording = defaults_for(kind)
    if value is None:
        return wording
    _check_keys(path, value, set(wording), "wording.")
    for key, given in value.items():
        if key == "scale":
            _check_keys(path, given, {"points", "labels"}, "wording.scale.")
            points = _int(path, given, "wording.scale.points", wording["scale"]["points"], 2, 11)
            labels = given.get("labels", wording["scale"]["labels"])
            if not isinstance(labels, dict):
                raise _fail(path, "wording.scale.labels", "must map scale points to labels")
            labels = {str(k): v for k, v in labels.items()}
            for k, v in labels.items():
                if not k.isdigit() or not 1 <= int(k) <= points:
                    raise _fail(path, f"wording.scale.labels.{k}", f"not a point of the 1..{points} scale")
                if not isinstance(v, str):
                    raise _fail(path, f"wording.scale.labels.{k}", "must be a string")
            wording["scale"] = {"points": points, "labels": labels}
        elif key == "choices":
            _check_keys(path, given, set(wording["choices"]), "wording.choices.")
            for k, v in given.items():
                if not isinstance(v, str) or not v.strip():
                    raise _fail(path, f"wording.choices.{k}", "must be a non-empty string")
                wording["choices"][k] = v
        else:
            if not isinstance(given, str) or not given.strip():
                raise _fail(path, f"wording.{key}", "must be a non-empty string")
            wording[key] = given
    if "{label}" not in wording["attention_question"]:
        raise _fail(path, "wording.attention_question", "must contain {label} (the instructed answer)")
    return wording


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; raises StudyError naming the file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyError(f"{path}: cannot read spec ({exc.strerror})") from None
    try:
        data = load_yaml(text, str(path))   # a key given twice is one error naming both lines
    except DuplicateKeyError as exc:
        raise StudyError(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise StudyError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise StudyError(f"{path}: a spec must be a YAML mapping of fields")
    return parse_spec(data, path)


def _kind_field(path: Path, name: str, kind: str | None) -> None:
    """Refuse a kind's own spec field in a spec of another kind (one line naming who takes it)."""
    takers = [k.name for k in REGISTRY.values() if name in k.spec_fields]
    if kind not in takers:
        raise _fail(path, name, f"only {' and '.join(takers)} studies take it (kind is {kind!r})")


def parse_sources(path: Path, raw, kind: str | None = None) -> tuple[str, ...]:
    """The `sources` field: at least two distinct pair-source names (lower-case letters,
    digits, '_'; not 'undecided'), for the kinds that compare pair sources (consistency);
    default DEFAULT_SOURCES. `kind` None: the field is checked for itself."""
    if raw is None:
        return DEFAULT_SOURCES
    if kind is not None:
        _kind_field(path, "sources", kind)
    if (not isinstance(raw, list) or len(raw) < 2
            or not all(isinstance(v, str) and SOURCE_RE.match(v) and v != "undecided" for v in raw)
            or len(set(raw)) != len(raw)):
        raise _fail(path, "sources", "must list at least two distinct pair sources (lower-case "
                                     f"letters, digits, '_'; not 'undecided'), got {raw!r}")
    return tuple(raw)


def parse_spec(data: dict, path: Path) -> Spec:
    """Validate an already-parsed spec mapping (`path` is used in messages and for atlases)."""
    path = Path(path)
    _check_keys(path, data, TOP_FIELDS)
    kind = data.get("kind")
    if kind not in KINDS:
        raise _fail(path, "kind", f"must be one of {', '.join(KINDS)} (got {kind!r})")
    sid = data.get("id")
    if sid is not None and (not isinstance(sid, str) or not ID_RE.match(sid)):
        raise _fail(path, "id", f"must be 1-64 letters, digits, '-' or '_' (got {sid!r})")
    seed = _int(path, data, "seed", 0, 0, 2**32 - 1)
    methods = _methods(path, data.get("methods"))
    datasets = data.get("datasets")
    if datasets is not None and (not isinstance(datasets, list) or not datasets
                                 or not all(isinstance(d, str) for d in datasets)):
        raise _fail(path, "datasets", "must be a non-empty list of data set names")
    mixed = data.get("mixed_image_sets", [])
    if not isinstance(mixed, list) or not all(isinstance(d, str) and d for d in mixed):
        raise _fail(path, "mixed_image_sets", f"must be a list of data set names (got {mixed!r})")
    pool = _int(path, data, "pool_size", 30, 1)
    per_version = _int(path, data, "items_per_version", 10, 1)
    if per_version > pool:
        raise _fail(path, "items_per_version", f"{per_version} is larger than pool_size {pool}")
    versions = _int(path, data, "versions", 4, 1, 10000)
    order = data.get("order", "random")
    if order not in ORDERS:
        raise _fail(path, "order", f"must be one of {', '.join(ORDERS)} (got {order!r})")
    same_images = data.get("same_images", False)
    if not isinstance(same_images, bool):
        raise _fail(path, "same_images", f"must be true or false (got {same_images!r})")
    media_raw = data.get("media") or {}
    _check_keys(path, media_raw, {"layout", "max_side", "patches_per_prototype", "patch_size"}, "media.")
    layout = media_raw.get("layout", "side_by_side")
    if layout not in LAYOUTS:
        raise _fail(path, "media.layout", f"must be one of {', '.join(LAYOUTS)} (got {layout!r})")
    media = Media(
        layout=layout,
        max_side=_int(path, media_raw, "media.max_side", 448, 64, 4096),
        patches_per_prototype=_int(path, media_raw, "media.patches_per_prototype", 3, 1, 20),
        patch_size=_int(path, media_raw, "media.patch_size", 160, 32, 1024),
    )
    wording = _wording(path, kind, data.get("wording"))
    att_raw = data.get("attention") or {}
    _check_keys(path, att_raw, {"count", "max_failures"}, "attention.")
    attention = Attention(
        count=_int(path, att_raw, "attention.count", 0, 0, 50),
        max_failures=_int(path, att_raw, "attention.max_failures", 0, 0),
    )
    codes_raw = data.get("codes") or {}
    _check_keys(path, codes_raw, set(CODE_KINDS), "codes.")
    codes: dict[str, str | None] = {}
    for key in CODE_KINDS:
        code = codes_raw.get(key)
        if code is not None and (not isinstance(code, str) or not CODE_RE.match(code)):
            raise _fail(path, f"codes.{key}", f"must be 4-64 letters, digits, '-' or '_' (got {code!r})")
        codes[key] = code
    for i, key in enumerate(CODE_KINDS):
        for other in CODE_KINDS[:i]:
            if codes[key] and codes[key] == codes[other]:
                raise _fail(path, f"codes.{key}", f"must differ from codes.{other}")
    recent = _int(path, data, "recent_start_minutes", 60, 1)
    if "exclusions" in data and not isinstance(data["exclusions"], dict):   # read by `study analyze --spec`
        raise _fail(path, "exclusions", "must be a mapping of exclusion rules (see study analyze --spec)")
    for name in TOP_FIELDS:
        if name in data and any(name in k.spec_fields for k in REGISTRY.values()):
            _kind_field(path, name, kind)
    own = kind_of(kind).parse_fields(path, data)
    wording = kind_of(kind).fit_wording(path, wording, own)
    return Spec(path=path, id=sid, kind=kind, seed=seed, methods=methods, datasets=datasets,
                pool_size=pool, items_per_version=per_version, versions=versions, order=order,
                same_images=same_images, media=media, wording=wording, attention=attention,
                codes=codes, recent_start_minutes=recent, raw=data, mixed_image_sets=sorted(set(mixed)),
                analysis=parse_analysis_plan(data.get("analysis"), path), **own)
