"""Human ratings and choices next to automatic prototype metrics, and their agreement.

Why: a paper wants to say whether people agree with a metric (docs/METRICS.md). Each
saliency rating is of one prototype of one method (the study key says which); per
(method, prototype) we take the mean rating and put it next to that prototype's metrics
from the method's metrics.json (`python -m core metrics`), then give Spearman's rho
between them across prototypes, per method and pooled, with a confidence interval.

CI: Fisher's z with the Fieller, Hartley & Pearson (1957) standard error for Spearman's
rho, `tanh(atanh(rho) +- z_(1+c)/2 * sqrt(1.06 / (n - 3)))` (n >= 4), and with
`bootstrap > 0` a seeded percentile bootstrap over prototypes instead. The p-value is
SciPy's `spearmanr` (t approximation, two-sided). Consistency questions (ProtoPShare's
design: two sets of patches, one per prototype pair) are joined too: per pair how often
it was chosen, and how often people chose the pair with the higher metric
(`consistency_choices`). Reads JSON only: no torch, no core.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from common.atomic import write_atomic
from study.analysis.consistency import choice_kinds, consistency_answers
from study.analysis.io import RATING_KINDS
from study.errors import StudyError

METRICS_FORMAT = "protoproto-metrics"
KEY_FORMAT = "protoproto-study-key"
METRIC_COLUMNS = ("consistent", "consistency_frequency", "stability", "purity", "box_share")
FIELLER_VARIANCE = 1.06


@dataclass
class MetricsJoin:
    table: pd.DataFrame          # one row per (method, dataset, prototype): ratings and metrics
    correlations: pd.DataFrame   # one row per (method or "(all)", metric)
    sources: dict                # method -> metrics file read
    pairs: pd.DataFrame | None = None     # consistency: one row per (method, pair) shown
    choices: pd.DataFrame | None = None   # consistency: does the chosen set have the higher metric?


def _read_json(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise StudyError(f"{path}: the {what} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise StudyError(f"{path}: the {what} must hold a JSON object")
    return doc


def read_key(path) -> dict:
    """The study's private key: key.json, or a study folder holding private/key.json."""
    path = Path(path)
    if path.is_dir():
        path = path / "private" / "key.json"
    doc = _read_json(path, "study key")
    if doc.get("format") != KEY_FORMAT:
        raise StudyError(f"{path}: field 'format' is {doc.get('format')!r}, expected {KEY_FORMAT!r}")
    if not isinstance(doc.get("items"), dict):
        raise StudyError(f"{path}: field 'items' must be an object")
    return doc


def read_metrics(path) -> tuple[dict, Path]:
    """metrics.json, or an atlas folder whose atlas.json names it (field `metrics`)."""
    path = Path(path)
    if path.is_dir():
        manifest = path / "atlas.json"
        rel = _read_json(manifest, "atlas manifest").get("metrics") if manifest.is_file() else "metrics.json"
        if not rel:
            raise StudyError(f"{manifest}: field 'metrics' missing (run python -m core metrics --atlas)")
        path = path / rel
    doc = _read_json(path, "metrics file")
    if doc.get("format") != METRICS_FORMAT:
        raise StudyError(f"{path}: field 'format' is {doc.get('format')!r}, expected {METRICS_FORMAT!r}")
    if doc.get("version") != 1:
        raise StudyError(f"{path}: field 'version' is {doc.get('version')!r}, this reader handles 1")
    if not isinstance(doc.get("prototypes"), list):
        raise StudyError(f"{path}: field 'prototypes' must be a list")
    return doc, path


def parse_metrics_args(values: list[str]) -> dict[str, Path]:
    """['ProtoPool=atlases/a', ...] -> {'ProtoPool': Path('atlases/a')}."""
    out: dict[str, Path] = {}
    for v in values or []:
        if "=" not in v or not v.split("=", 1)[0].strip() or not v.split("=", 1)[1].strip():
            raise StudyError(f"--metrics {v!r}: expected METHOD=PATH (a metrics.json or an atlas folder)")
        method, path = v.split("=", 1)
        if method.strip() in out:
            raise StudyError(f"--metrics: method {method.strip()!r} given twice")
        out[method.strip()] = Path(path.strip())
    return out


def _metric_row(proto: dict) -> dict:
    cons = proto.get("consistency") or {}
    pur = proto.get("purity") or {}
    return {"consistent": (float(cons["consistent"]) if "consistent" in cons else np.nan),
            "consistency_frequency": cons.get("frequency", np.nan),
            "stability": np.nan if proto.get("stability") is None else proto["stability"],
            "purity": pur.get("purity", np.nan),
            "box_share": np.nan if proto.get("box_share") is None else proto["box_share"]}


def prototype_ratings(answers: pd.DataFrame, key: dict) -> pd.DataFrame:
    """Mean, median and count of the ratings of each (method, dataset, prototype)."""
    rated = answers[answers["kind"].astype(str).isin(RATING_KINDS)]
    rows = []
    items = key["items"]
    for item_id, score in zip(rated["item_id"].astype(str), rated["score"].astype(int)):
        entry = items.get(item_id)
        if entry is None:
            raise StudyError(f"answers: item {item_id!r} is not in the study key (another study's answers?)")
        if entry.get("prototype") is None:
            continue                          # heatmaps of non-prototype methods have no prototype
        rows.append((str(entry.get("method", "")), str(entry.get("dataset", "")), int(entry["prototype"]), score))
    df = pd.DataFrame(rows, columns=["method", "dataset", "prototype", "score"])
    if df.empty:
        return pd.DataFrame(columns=["method", "dataset", "prototype", "n_ratings", "mean_rating", "median_rating"])
    grouped = df.groupby(["method", "dataset", "prototype"], sort=True)["score"]
    return grouped.agg(n_ratings="size", mean_rating="mean", median_rating="median").reset_index()


def _pair_value(by_id: dict, pair, column: str) -> float:
    values = [_metric_row(by_id[p])[column] if p in by_id else np.nan for p in pair]
    return float(np.mean(values))


def consistency_choices(answers: pd.DataFrame, key: dict, docs: dict[str, dict], confidence: float = 0.95
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Consistency questions (two sets of patches, each the nearest patches of a prototype
    pair): per pair how often it was shown and chosen, next to the pair's metrics (the mean
    over its two prototypes); and per metric, among decided answers whose two pairs differ
    in it, the share where people chose the pair with the higher metric (two-sided
    binomial test against 1/2, Clopper-Pearson CI)."""
    con = consistency_answers(answers)
    items = key["items"]
    shown: dict = {}
    decided = []          # (method, chosen pair, other pair)
    for item_id, choice in zip(con["item_id"].astype(str), con["choice_source"].astype(str)):
        entry = items.get(item_id)
        if entry is None:
            raise StudyError(f"answers: item {item_id!r} is not in the study key (another study's answers?)")
        method = str(entry.get("method", ""))
        if method not in docs:
            continue
        left, right = tuple(entry["left_pair"]), tuple(entry["right_pair"])
        for pair, source in ((left, entry.get("left_source")), (right, entry.get("right_source"))):
            row = shown.setdefault((method, pair), {"source": source, "shown": 0, "chosen": 0, "undecided": 0})
            row["shown"] += 1
            row["chosen"] += int(choice == source)
            row["undecided"] += int(choice == "undecided")
        if choice == entry.get("left_source"):
            decided.append((method, left, right))
        elif choice == entry.get("right_source"):
            decided.append((method, right, left))
    pair_rows = []
    for (method, pair), r in sorted(shown.items()):
        by_id = docs[method]
        pair_rows.append({"method": method, "a": pair[0], "b": pair[1], **r,
                          "choice_rate": r["chosen"] / r["shown"],
                          **{c: _pair_value(by_id, pair, c) for c in METRIC_COLUMNS}})
    choice_rows = []
    for method in [m for m in docs] + (["(all)"] if len(docs) > 1 else []):
        subset = [d for d in decided if method in ("(all)", d[0])]
        for col in METRIC_COLUMNS:
            k = n = 0
            for m, chosen, other in subset:
                a, b = _pair_value(docs[m], chosen, col), _pair_value(docs[m], other, col)
                if np.isfinite(a) and np.isfinite(b) and a != b:
                    n += 1
                    k += int(a > b)
            row = {"method": method, "metric": col, "decided": len(subset), "n": n, "agree": k,
                   "proportion": k / n if n else np.nan, "p_value": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                   "ci_level": confidence, "ci_method": "Clopper-Pearson (exact)"}
            if n:
                res = stats.binomtest(k, n, 0.5)
                ci = res.proportion_ci(confidence_level=confidence, method="exact")
                row.update(p_value=float(res.pvalue), ci_low=float(ci.low), ci_high=float(ci.high))
            choice_rows.append(row)
    pair_cols = ["method", "a", "b", "source", "shown", "chosen", "undecided", "choice_rate", *METRIC_COLUMNS]
    return pd.DataFrame(pair_rows, columns=pair_cols), pd.DataFrame(choice_rows)


def spearman_ci(x, y, confidence: float = 0.95, bootstrap: int = 0, seed: int = 0) -> dict:
    """Spearman's rho of paired values (NaN pairs dropped), p-value and CI."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = len(x)
    out = {"n": n, "rho": np.nan, "p_value": np.nan, "ci_low": np.nan, "ci_high": np.nan,
           "ci_level": confidence, "ci_method": "none"}
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return out
    res = stats.spearmanr(x, y)
    rho = float(res.statistic)
    out.update(rho=rho, p_value=float(res.pvalue))
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            idx = rng.integers(0, n, n)
            if np.all(x[idx] == x[idx][0]) or np.all(y[idx] == y[idx][0]):
                continue
            draws.append(stats.spearmanr(x[idx], y[idx]).statistic)
        if draws:
            a = (1 - confidence) / 2
            out.update(ci_low=float(np.quantile(draws, a)), ci_high=float(np.quantile(draws, 1 - a)),
                       ci_method=f"percentile bootstrap ({len(draws)} resamples over prototypes)")
    elif n >= 4:
        z = stats.norm.ppf(0.5 + confidence / 2)
        centre = math.atanh(max(min(rho, 1 - 1e-12), -1 + 1e-12))
        half = z * math.sqrt(FIELLER_VARIANCE / (n - 3))
        out.update(ci_low=math.tanh(centre - half), ci_high=math.tanh(centre + half),
                   ci_method="Fisher z, Fieller SE sqrt(1.06/(n-3))")
    return out


def join_metrics(answers: pd.DataFrame, key: dict, metrics: dict[str, Path], *, confidence: float = 0.95,
                 bootstrap: int = 0, seed: int = 0) -> MetricsJoin:
    """Ratings per prototype next to the metrics; Spearman per method and pooled."""
    ratings = prototype_ratings(answers, key)
    methods = sorted(set(ratings["method"]) | {str(e.get("method", "")) for e in key["items"].values()
                                                if e.get("kind") in choice_kinds()})
    unknown = [m for m in metrics if m not in methods]
    if unknown:
        raise StudyError(f"--metrics: method {unknown[0]!r} has no rated prototypes or consistency questions "
                         f"in the study (methods: {', '.join(methods) or 'none'})")
    frames, sources, docs = [], {}, {}
    for method, path in metrics.items():
        doc, where = read_metrics(path)
        sources[method] = str(where)
        by_id = {int(p["id"]): p for p in doc["prototypes"]}
        docs[method] = by_id
        part = ratings[ratings["method"] == method].copy()
        missing = sorted(set(part["prototype"]) - set(by_id))
        if missing:
            raise StudyError(f"{where}: prototype {missing[0]} of method {method!r} was rated but has no "
                             "metrics (metrics of another model?)")
        for col in METRIC_COLUMNS:
            part[col] = [_metric_row(by_id[p])[col] for p in part["prototype"]]
        frames.append(part)
    columns = ["method", "dataset", "prototype", "n_ratings", "mean_rating", "median_rating", *METRIC_COLUMNS]
    table = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    rows = []
    groups = [(m, table[table["method"] == m]) for m in metrics] + ([("(all)", table)] if len(metrics) > 1 else [])
    for label, sub in groups:
        for col in METRIC_COLUMNS:
            r = spearman_ci(sub["mean_rating"], sub[col], confidence, bootstrap, seed)
            rows.append({"method": label, "metric": col, **r})
    pairs = choices = None
    if len(consistency_answers(answers)):
        pairs, choices = consistency_choices(answers, key, docs, confidence)
    return MetricsJoin(table, pd.DataFrame(rows), sources, pairs, choices)


def _atomic_write(path: Path, text: str) -> None:
    write_atomic(path, text)   # a failure leaves no half-written file and no temporary one


def write_metrics_join(result: MetricsJoin, out) -> list[str]:
    """tables/metrics_join.csv, tables/metrics_correlations.csv, metrics_join.json in the report folder."""
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "tables" / "metrics_join.csv", result.table.to_csv(index=False))
    _atomic_write(out / "tables" / "metrics_correlations.csv", result.correlations.to_csv(index=False))
    files = ["tables/metrics_join.csv", "tables/metrics_correlations.csv"]
    doc = {"format": "protoproto-metrics-join", "version": 1, "sources": result.sources,
           "correlations": json.loads(result.correlations.to_json(orient="records")),
           "prototypes": json.loads(result.table.to_json(orient="records")), "pairs": None, "choices": None}
    if result.pairs is not None:
        _atomic_write(out / "tables" / "metrics_pairs.csv", result.pairs.to_csv(index=False))
        _atomic_write(out / "tables" / "metrics_choices.csv", result.choices.to_csv(index=False))
        files += ["tables/metrics_pairs.csv", "tables/metrics_choices.csv"]
        doc["pairs"] = json.loads(result.pairs.to_json(orient="records"))
        doc["choices"] = json.loads(result.choices.to_json(orient="records"))
    _atomic_write(out / "metrics_join.json", json.dumps(doc, indent=1))
    return files + ["metrics_join.json"]


def metrics_join_for(answers, options, key_path, metric_args: list[str]) -> MetricsJoin:
    """The join for `python -m study analyze --metrics ... --key ...`: the same answers,
    after the same exclusions, as the rest of the report."""
    from study.analysis.exclusions import apply_exclusions
    from study.analysis.io import load_answers

    if not key_path:
        raise StudyError("--metrics needs --key (the study folder or its private/key.json) to know "
                         "which prototype each rating is about")
    metrics = parse_metrics_args(metric_args)
    key = read_key(key_path)
    kept, _ = apply_exclusions(load_answers(answers, options.rules.needs(), options.scale,
                                            options.sources), options.rules)
    return join_metrics(kept, key, metrics, confidence=options.confidence, bootstrap=options.bootstrap,
                        seed=options.seed)
