"""`build_study`: spec + atlases -> a blinded, reproducible study folder (FORMATS.md §5).

All randomness flows from one `random.Random(spec.seed)` consumed in a fixed order, JSON
is written with sorted keys and PNGs without metadata, and no time is recorded: the same
spec and seed give a byte-identical folder. The folder is built next to its target and
renamed into place, so a failed build leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path

from common.atomic import AtomicFolder
from study import media as M
from study.atlas_reader import Atlas, read_atlas
from study.errors import StudyError
from study.folder import KEY_FORMAT, STUDY_FORMAT, VERSION, dump_json
from study.order import assign_versions, insert_attention, order_version
from study.kinds import kind_of
from study.select import Candidate, select
from study.spec import ID_RE, Spec, load_spec


def option_list(spec: Spec) -> list[dict]:
    """Answer options shown to participants: value stored, label displayed."""
    return kind_of(spec.kind).options(spec.wording)


def _groups(spec: Spec) -> dict[str, list[tuple[str, Atlas]]]:
    groups: dict[str, list[tuple[str, Atlas]]] = {}
    seen: dict[tuple[str, str], int] = {}
    found = set()
    for i, ref in enumerate(spec.methods):
        atlas = read_atlas(ref.atlas)
        label = ref.label or atlas.method
        found.add(atlas.dataset)
        if (atlas.dataset, label) in seen:
            raise StudyError(f"{spec.path}: field 'methods[{i}].label': method {label!r} appears twice for "
                             f"data set {atlas.dataset!r} (methods[{seen[(atlas.dataset, label)]}]); give a distinct label")
        seen[(atlas.dataset, label)] = i
        if spec.datasets is None or atlas.dataset in spec.datasets:
            groups.setdefault(atlas.dataset, []).append((label, atlas))
    for name in spec.datasets or []:
        if name not in found:
            raise StudyError(f"{spec.path}: field 'datasets': no atlas is for data set {name!r} (atlases cover {sorted(found)})")
    for name in spec.mixed_image_sets:
        if name not in found:
            raise StudyError(f"{spec.path}: field 'mixed_image_sets': no atlas is for data set {name!r} "
                             f"(atlases cover {sorted(found)})")
    for name, members in groups.items():
        if name not in spec.mixed_image_sets:
            _same_image_set(spec, name, [atlas for _, atlas in members])
    return dict(sorted(groups.items()))


def _same_image_set(spec: Spec, dataset: str, atlases: list[Atlas]) -> None:
    """Every method compared on `dataset` must explain the same images (atlas.json
    dataset.image_set, core/atlas/identity.py); one line naming both atlases otherwise."""
    if len(atlases) < 2:
        return
    for atlas in atlases:
        if not atlas.image_set:
            raise StudyError(f"{atlas.manifest}: field 'dataset.image_set': missing (an atlas from before image-set "
                             f"identities, or imported): add it with `python -m core image-set {atlas.root}` "
                             f"(--data-root DIR for an imported one; or import it again with --data-root) or rebuild it with "
                             f"`python -m core atlas`")
    first = atlases[0]
    for other in atlases[1:]:
        a, b = first.image_set or {}, other.image_set or {}
        if a["sha256"] == b["sha256"]:
            continue
        if first.class_names != other.class_names:
            what = f"class lists differ ({len(first.class_names)} vs {len(other.class_names)} classes)"
        elif a["images"] != b["images"]:
            what = f"{a['images']} vs {b['images']} images"
        else:
            what = f"same classes and {a['images']} images, but other image ids, files, labels or sizes"
        raise StudyError(f"{spec.path}: field 'methods': atlases {first.root} and {other.root} explain different "
                         f"image sets under data set {dataset!r}: {what} (image set {a['sha256'][:12]} vs "
                         f"{b['sha256'][:12]}); build both on the same data, or add {dataset!r} to "
                         f"mixed_image_sets to compare them anyway")


def private_terms(spec: Spec, groups) -> list[str]:
    """Words that must never reach a participant: method labels, atlas names and folders."""
    terms = set()
    for members in groups.values():
        for label, atlas in members:
            terms.update({label, atlas.name, atlas.method, atlas.root.resolve().name})
    for ref in spec.methods:
        terms.add(ref.atlas.name)
    terms.update({"data_dependent", "euclidean", "data-dependent"})
    terms.update(spec.sources)
    return sorted(t for t in terms if len(t) >= 3)


def _check_public_text(spec: Spec, study_id: str, terms: list[str]) -> None:
    texts = [("id", study_id)]
    for key, value in spec.wording.items():
        if isinstance(value, str):
            texts.append((f"wording.{key}", value))
        elif key == "scale":
            texts += [(f"wording.scale.labels.{k}", v) for k, v in value["labels"].items()]
        elif key == "choices":
            texts += [(f"wording.choices.{k}", v) for k, v in value.items()]
    for name, text in texts:
        for term in terms:
            if term.lower() in text.lower():
                raise StudyError(f"{spec.path}: field '{name}': mentions {term!r}, which would unblind the study")


def _name(rng: random.Random, used: set[str], width: int = 16) -> str:
    while True:
        name = f"{rng.getrandbits(width * 4):0{width}x}"
        if name not in used:
            used.add(name)
            return name


def _render(plan: tuple, spec: Spec) -> list[bytes]:
    return kind_of(spec.kind).render(plan, spec)


def _repeatable(digests: list[str], cand: Candidate, spec: Spec) -> list[str]:
    """The pictures of an item that must not appear twice in a version: all of them, but
    the plain photograph of a two-picture saliency question when the spec asks every
    method to show the same images (`same_images: true`), and for pairwise questions only
    the two pictures together (a method's map is meant to meet each other method's)."""
    return kind_of(spec.kind).repeatable(digests, cand.media, spec)


def build_study(spec_path: str | Path, out: str | Path, *, overwrite: bool = False,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the study folder `out` from the spec; returns its path."""
    spec = load_spec(spec_path)
    out = Path(out)
    study_id = spec.id or out.name
    if not ID_RE.match(study_id):
        raise StudyError(f"{spec.path}: field 'id': study id {study_id!r} (from --out) must be 1-64 letters, digits, '-' or '_'")
    if out.exists() and not overwrite:
        raise StudyError(f"{out}: already exists (remove it or pass --force)")
    if (out / "answers.sqlite").exists():
        raise StudyError(f"{out}: holds collected answers (answers.sqlite); move them away before rebuilding")
    groups = _groups(spec)
    terms = private_terms(spec, groups)
    _check_public_text(spec, study_id, terms)

    rng = random.Random(spec.seed)
    pools = select(spec, groups, rng)
    used_names: set[str] = set()
    item_ids: dict[str, list[str]] = {combo: [_name(rng, used_names, 12) for _ in pool] for combo, pool in pools.items()}
    by_id: dict[str, Candidate] = {iid: cand for combo, pool in pools.items() for iid, cand in zip(item_ids[combo], pool)}
    options = option_list(spec)
    datasets = sorted({cand.key["dataset"] for cand in by_id.values()})
    attention_ids = [_name(rng, used_names, 12) for _ in range(spec.attention.count)]
    attention_expected = [rng.choice([o for o in options if o["value"] != "undecided"]) for _ in attention_ids]
    attention_dataset = [rng.choice(datasets) for _ in attention_ids]

    folder = AtomicFolder(out, replace=overwrite)   # first removes the temp folders of killed builds
    tmp = folder.path
    try:
        (tmp / "media").mkdir()
        (tmp / "private").mkdir()
        # media: every candidate rendered in a fixed order straight to disk (under its digest until
        # it gets its random name); an attention check gets pictures of its own, never a copy
        rendered: dict[str, list[str]] = {}
        jobs = [(iid, lambda c=by_id[iid]: _render(c.media, spec)) for iid in by_id]
        kind = kind_of(spec.kind)
        one_picture = kind.two_pictures_side_by_side and spec.media.layout == "side_by_side"
        jobs += [(iid, lambda n=n, e=expected: M.check_media(kind.check_size(spec), one_picture, e["label"], n))
                 for n, (iid, expected) in enumerate(zip(attention_ids, attention_expected))]
        for n, (iid, render) in enumerate(jobs):
            digests = []
            for blob in render():
                digest = hashlib.sha256(blob).hexdigest()
                if not (tmp / "media" / f"{digest}.png").exists():
                    (tmp / "media" / f"{digest}.png").write_bytes(blob)
                digests.append(digest)
            rendered[iid] = digests
            if progress:
                progress(n + 1, len(jobs))

        # versions: balanced use, and no picture twice in a version
        stimuli = {iid: frozenset(_repeatable(rendered[iid], by_id[iid], spec)) for iid in by_id}
        try:
            per_combo = assign_versions(item_ids, spec.versions, spec.items_per_version, rng, stimuli)
        except ValueError as exc:
            raise StudyError(f"{spec.path}: field 'pool_size': {exc}; use a larger pool or fewer items per "
                             f"version") from None
        rank = {iid: n for n, iid in enumerate(by_id)}
        used = sorted({iid for chosen in per_combo.values() for version in chosen for iid in version},
                      key=rank.__getitem__)
        versions = []
        for v in range(spec.versions):
            blocks = [per_combo[combo][v] for combo in pools]
            seq = order_version(blocks, spec.order, v, rng)
            checks = attention_ids[:]
            rng.shuffle(checks)
            versions.append(insert_attention(seq, checks, rng))

        # random names for the pictures shown, in a fixed order; the others are dropped
        names: dict[str, str] = {}
        for iid in used + attention_ids:
            for digest in rendered[iid]:
                if digest not in names:
                    names[digest] = f"media/{_name(rng, used_names)}.png"
                    (tmp / "media" / f"{digest}.png").rename(tmp / names[digest])
        for leftover in (tmp / "media").glob("*.png"):
            if len(leftover.stem) == 64:
                leftover.unlink()
        item_media = {iid: [names[d] for d in rendered[iid]] for iid in used + attention_ids}

        items = {iid: {"kind": spec.kind, "question": kind.item_question(spec, by_id[iid].key),
                       "media": item_media[iid]} for iid in used}
        key = {iid: dict(by_id[iid].key) for iid in used}
        for iid, expected, dataset in zip(attention_ids, attention_expected, attention_dataset):
            question = spec.wording["attention_question"].replace("{label}", expected["label"])
            items[iid] = {"kind": "attention", "question": question, "media": item_media[iid]}
            key[iid] = {"kind": "attention", "dataset": dataset, "method": "", "expected": expected["value"]}

        codes = {k: (v or f"{ {'completion': 'C', 'screen_out': 'S'}.get(k, 'N')}{rng.getrandbits(40):010X}")
                 for k, v in spec.codes.items()}
        key_doc = {"format": KEY_FORMAT, "version": VERSION, "study_id": study_id, "items": key,
                   "methods": [{"label": label, "atlas": atlas.name, "dataset": ds,
                                "image_set": (atlas.image_set or {}).get("sha256")}
                               for ds, members in groups.items() for label, atlas in members],
                   "private_terms": terms}
        versions_doc = {"versions": versions}
        fingerprint = hashlib.sha256(dump_json(items) + dump_json(versions_doc) + dump_json(key_doc)).hexdigest()[:16]
        manifest = {
            "format": STUDY_FORMAT, "version": VERSION, "id": study_id, "kind": spec.kind, "seed": spec.seed,
            "order": spec.order, "versions": spec.versions, "items_per_version": spec.items_per_version,
            "pool_size": spec.pool_size, "combinations": len(pools), "layout": spec.media.layout,
            "options": options, "wording": spec.wording,
            "attention": {"count": spec.attention.count, "max_failures": spec.attention.max_failures},
            "codes": codes, "recent_start_minutes": spec.recent_start_minutes, "fingerprint": fingerprint,
            # data sets whose methods explain different image sets, by the spec's explicit choice
            "mixed_image_sets": [d for d in spec.mixed_image_sets if d in groups],
            # what the launch check compares the files (and what participants are served) with
            "media_sha256": {name: digest for digest, name in sorted(names.items(), key=lambda kv: kv[1])},
        }
        (tmp / "study.json").write_bytes(dump_json(manifest))
        (tmp / "items.json").write_bytes(dump_json(items))
        (tmp / "versions.json").write_bytes(dump_json(versions_doc))
        (tmp / "private" / "key.json").write_bytes(dump_json(key_doc))
        (tmp / "private" / "spec.yaml").write_bytes(spec.path.read_bytes())
        for d in (tmp, tmp / "media"):
            os.chmod(d, 0o755)
        os.chmod(tmp / "private", 0o700)      # the key: readable by the server's user only
        try:
            folder.commit()
        except FileExistsError:
            raise StudyError(f"{out}: appeared while building (remove it or pass --force)") from None
    except BaseException:
        folder.abort()
        raise
    return out
