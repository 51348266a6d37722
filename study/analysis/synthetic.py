"""Seeded synthetic answers in the long CSV layout (FORMATS.md §6).

Why: the analysis must be testable and benchmarkable without a running study, and a
researcher planning a study wants to see the report on plausible data before
collecting any. Ratings come from an ordinal-probit model (a latent normal score per
method plus a per-participant leniency, cut at 1.5, 2.5, 3.5, 4.5), so answers from one
participant are correlated the way real ones are.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CUTS = np.array([1.5, 2.5, 3.5, 4.5])


def synthetic_answers(
    n_participants: int = 30,
    *,
    methods: dict[str, float] | None = None,
    datasets: tuple[str, ...] = ("cub", "cars"),
    items_per_cell: int = 10,
    participant_sd: float = 0.5,
    noise_sd: float = 1.0,
    attention_items: int = 1,
    attention_fail_rate: float = 0.0,
    unfinished_rate: float = 0.0,
    fast_rate: float = 0.0,
    duplicate_workers: int = 0,
    consistency_versions: int = 0,
    consistency_questions: int = 5,
    consistency_probs: tuple[float, float, float] = (0.5, 0.3, 0.2),
    seed: int = 0,
) -> pd.DataFrame:
    """Return a DataFrame with every column of FORMATS.md §6 (unblinded export).

    `methods` maps a method label to its latent mean on the 1..5 scale. Each participant
    rates `items_per_cell` items per (data set, method). With `consistency_versions` > 0
    every participant also answers `consistency_questions` consistency questions of
    version `participant % consistency_versions`, choosing data-dependent, Euclidean or
    undecided with `consistency_probs`.
    """
    methods = methods or {"ProtoPool": 3.4, "ProtoPool w/o focal": 3.1, "ProtoTree": 2.9}
    rng = np.random.default_rng(seed)
    names = list(methods)
    mu = np.array([methods[m] for m in names])
    n_m, n_d, k = len(names), len(datasets), items_per_cell
    per = n_m * n_d * k
    p_ids = np.array([f"P{i:06d}" for i in range(n_participants)], dtype=object)

    # ratings: participant x dataset x method x item
    leniency = rng.normal(0.0, participant_sd, n_participants)
    latent = (mu[None, None, :, None] + leniency[:, None, None, None]
              + rng.normal(0.0, noise_sd, (n_participants, n_d, n_m, k)))
    score = (np.searchsorted(CUTS, latent.ravel()) + 1).astype(np.int64)
    part = np.repeat(np.arange(n_participants), per)
    ds_idx = np.tile(np.repeat(np.arange(n_d), n_m * k), n_participants)
    m_idx = np.tile(np.repeat(np.arange(n_m), k), n_participants * n_d)
    item_no = np.tile(np.arange(per), n_participants)
    sal = pd.DataFrame({
        "participant_id": p_ids[part],
        "item_id": np.char.add("s", item_no.astype(str)).astype(object),
        "kind": "saliency",
        "dataset": np.asarray(datasets, dtype=object)[ds_idx],
        "method": np.asarray(names, dtype=object)[m_idx],
        "answer": score.astype(str).astype(object),
        "part": part,
    })
    frames = [sal]

    if attention_items:
        n_att = n_participants * attention_items
        a_part = np.repeat(np.arange(n_participants), attention_items)
        passed = (rng.random(n_att) >= attention_fail_rate).astype(int)
        frames.append(pd.DataFrame({
            "participant_id": p_ids[a_part],
            "item_id": [f"a{j}" for j in range(attention_items)] * n_participants,
            "kind": "attention", "dataset": "", "method": "",
            "answer": np.where(passed == 1, "5", "1").astype(object),
            "attention_passed": passed.astype(str).astype(object),
            "part": a_part,
        }))

    if consistency_versions:
        q = consistency_questions
        c_part = np.repeat(np.arange(n_participants), q)
        choice = rng.choice(3, size=n_participants * q, p=np.asarray(consistency_probs))
        src = np.array(["data_dependent", "euclidean", "undecided"], dtype=object)[choice]
        left_dd = rng.random(n_participants * q) < 0.5
        left = np.where(left_dd, "data_dependent", "euclidean").astype(object)
        right = np.where(left_dd, "euclidean", "data_dependent").astype(object)
        ans = np.where(choice == 2, "undecided", np.where(src == left, "A", "B")).astype(object)
        frames.append(pd.DataFrame({
            "participant_id": p_ids[c_part],
            "item_id": [f"c{j}" for j in range(q)] * n_participants,
            "kind": "consistency", "dataset": "", "method": "",
            "answer": ans, "left_source": left, "right_source": right, "choice_source": src,
            "part": c_part,
            "version": (c_part % consistency_versions),
        }))

    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values("part", kind="stable").reset_index(drop=True)
    part = df.pop("part").to_numpy()
    df["position"] = df.groupby(part).cumcount().to_numpy()

    fast = rng.random(n_participants) < fast_rate
    base = rng.lognormal(np.log(4000.0), 0.5, len(df))
    df["response_ms"] = np.where(fast[part], base / 20.0, base).astype(np.int64)
    finished = (rng.random(n_participants) >= unfinished_rate).astype(int)
    df["finished"] = finished[part].astype(str)
    workers = np.array([f"W{i:06d}" for i in range(n_participants)], dtype=object)
    for j in range(min(duplicate_workers, n_participants // 2)):
        workers[n_participants - 1 - j] = workers[j]  # same worker, second participant id
    df["worker_id"] = workers[part]
    df["study_id"] = "synthetic"
    df["platform"] = "local"
    if "version" not in df:
        df["version"] = 0
    df["version"] = df["version"].fillna(0).astype(np.int64)
    for col in ("left_source", "right_source", "choice_source", "attention_passed"):
        if col not in df:
            df[col] = ""
        df[col] = df[col].fillna("")
    t0 = np.datetime64("2026-01-01T00:00:00", "ms")
    df["answered_at"] = pd.Series(t0 + np.cumsum(df["response_ms"].to_numpy()).astype("timedelta64[ms]")
                                  ).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    order = ["study_id", "participant_id", "platform", "worker_id", "version", "position",
             "item_id", "kind", "dataset", "method", "answer", "left_source", "right_source",
             "choice_source", "attention_passed", "response_ms", "answered_at", "finished"]
    return df[order]
