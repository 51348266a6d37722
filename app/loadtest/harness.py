"""Run simulated participants against a participant URL, then compare with the store.

    result = run(Plan(url="http://127.0.0.1:8080/", study_dir=".../studies/ID", db=None,
                      participants=50, pace=Pace(3, 8), page="lean"))
    print(result.report())

Each participant opens its own Prolific-style link (`PROLIFIC_PID=<run>-<n>`, so the store
can be read back per participant and a resumed participant is the same one), arrives at
a random moment within `ramp_s`, answers every question and finishes. Bounded: at most
`participants` of them, and everything is cancelled at `limit_s`. Loopback only.
Afterwards the store is read (`Store.export_rows`, never written): answers acknowledged
by the page vs stored, answers lost (acknowledged, not stored), duplicates, finished
participants, and click -> next question latency with the load average.
"""
from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from app.loadtest.common import Pace, Record
from app.loadtest.http import split_url

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Plan:
    url: str                        # the participant page's base URL (the proxy or one process)
    study_dir: str                  # the study folder (to read its store afterwards)
    db: str | None = None           # the store's URL (None: the study's answers.sqlite)
    participants: int = 20
    pace: Pace = field(default_factory=Pace)
    page: str = "lean"              # lean | streamlit
    ramp_s: float = 10.0            # arrivals spread over this many seconds
    limit_s: float = 600.0          # everything stops here
    double_click: float = 0.05      # share of clicks sent twice at once
    seed: int = 0
    run_id: str = ""

    def describe(self) -> str:
        return (f"page={self.page} url={self.url} participants={self.participants} "
                f"pace={self.pace.low:g}-{self.pace.high:g}s ramp={self.ramp_s:g}s limit={self.limit_s:g}s "
                f"double_click={self.double_click:g} seed={self.seed}")


@dataclass
class Result:
    plan: Plan
    records: list[Record]
    stored: int
    lost: int
    duplicates: int
    duplicate_participants: int
    wall_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def clicks(self) -> list[float]:
        return sorted(t for r in self.records for t in r.clicks)

    @property
    def acked(self) -> int:
        return sum(len(r.acked) for r in self.records)

    @property
    def finished(self) -> int:
        return sum(r.finished for r in self.records)

    @property
    def errors(self) -> list[str]:
        return [f"{r.worker_id}: {r.error}" for r in self.records if r.error]

    def quantile(self, q: float) -> float:
        c = self.clicks
        return c[min(len(c) - 1, int(q * len(c)))] if c else float("nan")

    def phases(self) -> dict[str, tuple[float, float]]:
        """Per phase of a click (answer POST, next page GET, pictures, and the server's own
        share of each: waiting for a thread, the flow's work): (p50, p95) seconds."""
        names = sorted({n for r in self.records for p in r.phases for n in p})
        out = {}
        for name in names:
            values = sorted(p.get(name, 0.0) for r in self.records for p in r.phases)
            out[name] = (values[len(values) // 2], values[min(len(values) - 1, int(0.95 * len(values)))])
        return out

    def ok(self, p95_s: float | None = None) -> bool:
        good = (self.lost == 0 and self.duplicates == 0 and self.duplicate_participants == 0
                and self.finished == len(self.records) and not self.errors)
        return good and (p95_s is None or self.quantile(0.95) < p95_s)

    def report(self) -> str:
        c = self.clicks
        lat = (f"click -> next question: p50 {1000 * self.quantile(0.5):.0f} ms, p95 {1000 * self.quantile(0.95):.0f} ms, "
               f"max {1000 * c[-1]:.0f} ms (n={len(c)})" if c else "click -> next question: no clicks")
        lines = [
            f"plan: {self.plan.describe()}",
            f"participants: {len(self.records)} started, {self.finished} finished; "
            f"{sum(r.double_clicks for r in self.records)} double clicks sent",
            f"answers: {self.acked} acknowledged, {self.stored} stored, {self.lost} lost, "
            f"{self.duplicates} duplicates, {self.duplicate_participants} duplicate participants",
            lat,
            f"wall {self.wall_s:.1f} s; load average before {_fmt(self.load_before)}, after {_fmt(self.load_after)} "
            f"({os.cpu_count()} cores)",
        ]
        phases = self.phases()
        if phases:
            lines.append("where a click's time goes (p50 / p95 ms; runs_per_click: script runs): " + ", ".join(
                f"{name} {p50:.0f}/{p95:.0f}" if name == "runs_per_click" else
                f"{name} {1000 * p50:.0f}/{1000 * p95:.0f}" for name, (p50, p95) in phases.items()))
        errors = self.errors
        if errors:
            lines.append(f"{len(errors)} participants stopped with an error, e.g. {errors[0]}")
        return "\n".join(lines)


def _fmt(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def link(plan: Plan, study_id: str, n: int) -> tuple[str, str]:
    worker = f"{plan.run_id}-{n:04d}"
    query = urlencode({"study": study_id, "PROLIFIC_PID": worker, "STUDY_ID": "loadtest", "SESSION_ID": f"s{n}"})
    return plan.url.rstrip("/") + "/?" + query, worker


async def _participants(plan: Plan, study_id: str) -> list[Record]:
    host, port, _ = split_url(plan.url)
    if host not in LOOPBACK:
        raise ValueError(f"{plan.url}: the load harness only drives a server on this machine (127.0.0.1)")
    rng = random.Random(plan.seed)
    tasks = []

    async def one(n: int, delay: float, seed: int):
        await asyncio.sleep(delay)
        url, worker = link(plan, study_id, n)
        if plan.page == "streamlit":
            from app.loadtest.streamlit_client import StreamlitParticipant

            sim = StreamlitParticipant(host, port, url, worker, plan.pace, random.Random(seed),
                                       double_click=plan.double_click)
        else:
            from app.loadtest.lean_client import LeanParticipant

            sim = LeanParticipant(host, port, url, worker, plan.pace, random.Random(seed),
                                  double_click=plan.double_click)
        holder.append(sim.record)
        return await sim.run()

    holder: list[Record] = []
    for n in range(plan.participants):
        tasks.append(asyncio.ensure_future(one(n, rng.uniform(0, plan.ramp_s), rng.randrange(2**31))))
    done, pending = await asyncio.wait(tasks, timeout=plan.limit_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for rec in holder:
        if not rec.finished and not rec.error:
            rec.error = f"not finished within the limit of {plan.limit_s:g} s"
    return holder


def count_store(plan: Plan, records: list[Record]) -> tuple[int, int, int, int]:
    """(stored, lost, duplicates, duplicate participants) for this run's participants."""
    from study.folder import open_study
    from study.store import open_store

    study = open_study(plan.study_dir)
    store = open_store(plan.db, study.root)
    try:
        rows = [r for r in store.export_rows(study.id) if r["worker_id"].startswith(plan.run_id + "-")]
        people = Counter(p["worker_id"] for p in store.participants_of(study.id)
                         if p["worker_id"].startswith(plan.run_id + "-"))
    finally:
        store.close()
    pairs = Counter((r["worker_id"], r["item_id"]) for r in rows)
    acked = {(rec.worker_id, item) for rec in records for item in rec.acked}
    lost = len(acked - set(pairs))
    return len(rows), lost, sum(n - 1 for n in pairs.values() if n > 1), sum(n - 1 for n in people.values() if n > 1)


def run(plan: Plan) -> Result:
    from study.folder import open_study

    if not plan.run_id:
        plan.run_id = "sim" + secrets.token_hex(3)
    study_id = open_study(plan.study_dir).root.name
    before = os.getloadavg()
    t0 = time.monotonic()
    records = asyncio.run(_participants(plan, study_id))
    wall = time.monotonic() - t0
    after = os.getloadavg()
    stored, lost, dup, dup_people = count_store(plan, records)
    return Result(plan, records, stored, lost, dup, dup_people, wall, before, after)


def study_dir_of(home: str | Path, study_id: str) -> str:
    return str(Path(home) / "studies" / study_id)
