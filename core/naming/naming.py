"""Apply the naming rules to prototypes' nearest patches and record the evidence.

Input: CUB annotations (`core.data.cub.read_cub_annotations`) and, per prototype, its
nearest patches as image ids and boxes in original pixels (FORMATS.md §3). Output: one
evidence record per prototype (FORMATS.md §3, names file): which patches, which part
each fell on and how far from the box centre, the part vote, which attributes hold with
what support, the status and the name. Inconsistent prototypes get `name = None`.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from core.errors import FormatError
from core.naming.rules import NamingRules
from core.naming.vocabulary import compose, term

NEAREST_FORMAT = "protoproto-nearest"
NEAREST_VERSION = 1
NAMES_FORMAT = "protoproto-names"
NAMES_VERSION = 1
ATLAS_FORMAT = "protoproto-atlas"
ATLAS_VERSION = 1
# In a name, colour leads over shape over pattern (ties in support only).
_NAME_KIND_PRIORITY = ("colour", "shape", "pattern", "length", "size", "other")


class Namer:
    """Precomputes the per-image and per-class attribute filters once, then names."""

    def __init__(self, ann, rules: NamingRules | None = None):
        self.ann = ann
        self.rules = rules or NamingRules()
        if not len(ann.attribute_names) or ann.part_locs.shape[1] == 0:
            raise FormatError("naming needs CUB attributes and part locations "
                              "(attributes/image_attribute_labels.txt, parts/part_locs.txt)")
        r = self.rules
        # step 1: per image, attributes that are present with enough certainty
        self.holds = ann.is_present & (ann.certainty >= r.min_certainty)
        # step 2: per class, attributes holding for >= class_threshold of its images
        n_classes = len(ann.class_names)
        split = {"test": ~ann.is_train, "train": ann.is_train, "all": np.ones_like(ann.is_train)}[r.class_split]
        self.class_fraction = np.zeros((n_classes, self.holds.shape[1]))
        for c in range(n_classes):
            rows = np.flatnonzero((ann.labels == c) & split)
            if rows.size == 0:  # a class with no image in the split: use all its images
                rows = np.flatnonzero(ann.labels == c)
            if rows.size:
                self.class_fraction[c] = self.holds[rows].mean(axis=0)
        self.class_keep = self.class_fraction >= r.class_threshold - 1e-12
        self.parts = [r.part_of(p) for p in ann.part_names]
        self.group_attributes: dict[str, list[int]] = {}
        for a, g in enumerate(ann.attribute_groups):
            self.group_attributes.setdefault(g, []).append(a)

    # -- step 3 -------------------------------------------------------------------
    def part_of_patch(self, row: int, box: Sequence[float], cell: bool = False) -> dict:
        """Which part a patch falls on: nearest visible part location to the box centre.

        `box` is the patch's box as given, accepted within `part_distance_factor`
        half-diagonals of its centre; or, with `cell=True`, the feature cell's square
        (`cell_box`), accepted inside the cell grown by `cell_margin` cells."""
        x0, y0, x1, y1 = (float(v) for v in box)
        locs = self.ann.part_locs[row]
        visible = np.flatnonzero(locs[:, 2] > 0)
        out = {"part": None, "part_location": None, "part_distance": None}
        if visible.size == 0:
            return out
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        xy = locs[visible, :2]
        dist = np.hypot(xy[:, 0] - cx, xy[:, 1] - cy)
        inside = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
        r = self.rules
        if r.whole_bird_parts and len({self.parts[p] for p in visible[inside]}) >= r.whole_bird_parts:
            return {"part": "bird", "part_location": None, "part_distance": 0.0}
        best = int(np.argmin(dist))
        if cell:
            mx, my = r.cell_margin * (x1 - x0), r.cell_margin * (y1 - y0)
            bx, by = xy[best]
            near = bool(x0 - mx <= bx <= x1 + mx and y0 - my <= by <= y1 + my)
        else:
            near = dist[best] <= r.part_distance_factor * 0.5 * float(np.hypot(x1 - x0, y1 - y0))
        if inside[best] or near:
            p = int(visible[best])
            out = {"part": self.parts[p], "part_location": self.ann.part_names[p],
                   "part_distance": round(float(dist[best]), 2)}
        return out

    # -- steps 3 and 4 ------------------------------------------------------------
    def name(self, proto_id: int, patches: Iterable[dict]) -> dict:
        """Evidence record (with `name` and `status`) for one prototype."""
        r, ann = self.rules, self.ann
        used = list(patches)[: r.k]
        records = []
        for patch in used:
            row = ann.row_of(int(patch["image_id"]))
            rec = {"image_id": int(patch["image_id"]), "box": [float(v) for v in patch["box"]],
                   "class": int(ann.labels[row]), "class_name": ann.class_names[int(ann.labels[row])]}
            # The patch itself is the feature cell: locate the part with its square when the
            # input gives it (atlases do), else with the (display) box.
            cell_box = patch.get("cell_box")
            if cell_box is not None:
                rec["cell_box"] = [float(v) for v in cell_box]
            rec.update(self.part_of_patch(row, cell_box if cell_box is not None else patch["box"],
                                          cell=cell_box is not None))
            records.append(rec)
        votes = Counter(rec["part"] or "none" for rec in records)
        evidence = {"id": int(proto_id), "name": None, "status": None, "part": None,
                    "part_votes": dict(votes.most_common()), "patches": records,
                    "attributes": [], "name_attributes": []}
        if len(records) < r.part_consistency:
            evidence["status"] = "too_few_patches"
            return evidence
        part, count = votes.most_common(1)[0]
        if count < r.part_consistency:
            evidence["status"] = "inconsistent"
            return evidence
        if part == "none":
            evidence["status"] = "no_part"
            return evidence
        if r.source_must_hold and records[0]["part"] != part:
            evidence["status"] = "inconsistent"   # the prototype's own patch is on another part
            return evidence
        evidence["part"] = part
        rows = np.array([ann.row_of(rec["image_id"]) for rec in records if rec["part"] == part])
        source = ann.row_of(records[0]["image_id"])
        candidates = [a for g in r.part_groups.get(part, []) for a in self.group_attributes.get(g, [])]
        attrs = []
        for a in candidates:
            holds = self.holds[rows, a] & self.class_keep[ann.labels[rows], a]
            support = float(holds.mean())
            on_source = bool(self.holds[source, a] and self.class_keep[ann.labels[source], a])
            if support >= r.min_support - 1e-12 and (on_source or not r.source_must_hold):
                t = term(ann.attribute_names[a])
                attrs.append({"attribute": ann.attribute_names[a], "words": t.words, "kind": t.kind,
                              "support": round(support, 4),
                              "images": [int(ann.image_ids[i]) for i in rows[holds]]})
        attrs.sort(key=lambda d: (-d["support"], _NAME_KIND_PRIORITY.index(d["kind"]), d["attribute"]))
        evidence["attributes"] = attrs
        chosen, kinds, groups = [], set(), set()
        for d in attrs:
            group = d["attribute"].split("::", 1)[0]
            if d["kind"] in kinds or group in groups:
                continue
            chosen.append(d)
            kinds.add(d["kind"])
            groups.add(group)
            if len(chosen) == r.max_name_attributes:
                break
        if not chosen:
            evidence["status"] = "no_attribute"
            return evidence
        evidence["name_attributes"] = [d["attribute"] for d in chosen]
        evidence["name"] = compose([term(d["attribute"]) for d in chosen])
        evidence["status"] = "named"
        return evidence


def name_prototypes(ann, prototypes: Iterable[dict], rules: NamingRules | None = None) -> list[dict]:
    """Evidence records for prototypes given as `{"id": int, "nearest": [{"image_id", "box"}]}`."""
    namer = Namer(ann, rules)
    return [namer.name(p["id"], p.get("nearest") or []) for p in prototypes]


def names_document(records: list[dict], rules: NamingRules, **provenance) -> dict:
    """The names file (FORMATS.md §3) for `records`."""
    counts = Counter(r["status"] for r in records)
    return {"format": NAMES_FORMAT, "version": NAMES_VERSION, "rules": rules.to_dict(),
            **provenance, "summary": dict(counts), "prototypes": records}


def read_nearest_file(path) -> list[dict]:
    """Prototypes and their nearest patches from a nearest-patch file or an atlas.json.

    Validates every field; one FormatError line names the file and the field at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: nearest-patch file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: expected a JSON object at the top level")
    fmt, version = doc.get("format"), doc.get("version")
    expected = {NEAREST_FORMAT: NEAREST_VERSION, ATLAS_FORMAT: ATLAS_VERSION}
    if fmt not in expected:
        raise FormatError(f"{path}: field 'format' is {fmt!r}, expected {NEAREST_FORMAT!r} (or an atlas.json)")
    if version != expected[fmt]:
        raise FormatError(f"{path}: field 'version' is {version!r}, this reader handles {fmt} version {expected[fmt]}")
    protos = doc.get("prototypes")
    if not isinstance(protos, list):
        raise FormatError(f"{path}: field 'prototypes' must be a list")
    out, seen = [], set()
    for i, p in enumerate(protos):
        where = f"{path}: prototypes[{i}]"
        if not isinstance(p, dict) or not _is_int(p.get("id")):
            raise FormatError(f"{where}.id must be an integer")
        if p["id"] in seen:
            raise FormatError(f"{where}.id {p['id']} appears twice")
        seen.add(p["id"])
        nearest = p.get("nearest")
        if not isinstance(nearest, list):
            raise FormatError(f"{where}.nearest must be a list")
        patches = []
        for j, n in enumerate(nearest):
            if not isinstance(n, dict) or not _is_int(n.get("image_id")):
                raise FormatError(f"{where}.nearest[{j}].image_id must be an integer")
            box = n.get("box")
            if not _is_box(box):
                raise FormatError(f"{where}.nearest[{j}].box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, "
                                  f"got {box!r}")
            patch = {"image_id": int(n["image_id"]), "box": [float(v) for v in box]}
            cell_box = n.get("cell_box")
            if cell_box is not None:
                if not _is_box(cell_box):
                    raise FormatError(f"{where}.nearest[{j}].cell_box must be [x0, y0, x1, y1] with x1 > x0 and "
                                      f"y1 > y0, got {cell_box!r}")
                patch["cell_box"] = [float(v) for v in cell_box]
            patches.append(patch)
        out.append({"id": int(p["id"]), "nearest": patches})
    return out


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _is_box(box) -> bool:
    return (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)
            and box[2] > box[0] and box[3] > box[1])


def check_image_ids(prototypes: list[dict], ann, path) -> None:
    """Every image id of the nearest-patch file must be in the CUB annotations."""
    known = set(int(i) for i in ann.image_ids)
    for p in prototypes:
        for j, n in enumerate(p["nearest"]):
            if n["image_id"] not in known:
                raise FormatError(f"{path}: prototype {p['id']} nearest[{j}].image_id {n['image_id']} "
                                  f"is not an image id of the CUB data set")
