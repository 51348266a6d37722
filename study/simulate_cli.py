"""`python -m study simulate STUDY --participants N --db FILE`: answers of simulated participants.

Why: to try the whole pipeline (export, analysis, power) and see a report before any real
participant has answered. The simulated participants go through the real session engine
(versions assigned as for real ones, answers stored in order, attention checks answered as
instructed), into an answer store of their OWN (`--db`, never the study's answers.sqlite),
with worker ids `sim-0001`, ... so they can never be mistaken for collected data.

Answers (seeded) come from the question kind's `simulate` (study/kinds/): a rating is a
rounded normal draw around 3 + the method's `--effect` (default 0), clipped to the scale; a
consistency choice picks the data-dependent pair with probability 0.45, the other with 0.35,
undecided with 0.2; a pairwise choice is undecided with probability 0.2, else the left
method with probability expit(effect_left - effect_right).
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

from study.errors import StudyError
from study.folder import open_study
from study.kinds import kind_of
from study.session import StudyRunner
from study.store import open_store


def _effects(values: list[str]) -> dict[str, float]:
    out = {}
    for value in values:
        name, sep, shift = value.rpartition("=")
        try:
            out[name.strip()] = float(shift)
        except ValueError:
            name = ""
        if not sep or not name.strip():
            raise StudyError(f"--effect {value!r}: expected METHOD=SHIFT, e.g. ProtoPool=0.5")
    return out


def simulated_answer(info: dict, values: list[str], effects: dict[str, float], rng: random.Random) -> str:
    """One answer for an item of the private key (`info`), as described in the module doc."""
    if "expected" in info:        # an attention check: answered as instructed
        return info["expected"]
    return kind_of(info.get("kind", "")).simulate(info, values, effects, rng)


def simulate(study_dir: str | Path, participants: int, db: str, *, effects: dict[str, float] | None = None,
             seed: int = 0) -> int:
    """Run `participants` simulated participants through the study; returns answers stored."""
    study = open_study(study_dir)
    if Path(db).resolve() == (study.root / "answers.sqlite").resolve():
        raise StudyError(f"--db {db}: simulated answers never go into the study's own answer store; "
                         f"name another file, e.g. {study.root.name}-simulated.sqlite")
    runner = StudyRunner(study, open_store(db, study.root))
    rng = random.Random(seed)
    values = [v for v in study.option_values if v != "undecided"]
    stored = 0
    try:
        for n in range(participants):
            person = runner.start(platform="local", worker_id=f"sim-{n + 1:04d}")
            while (view := runner.next_item(person.participant_id)) is not None:
                info = runner.key[view.item_id]
                answer = simulated_answer(info, values, effects or {}, rng)
                result = runner.record_answer(person.participant_id, view.item_id, answer,
                                              response_ms=int(rng.uniform(1500, 9000)))
                stored += int(result.stored)
            runner.finish(person.participant_id)
    finally:
        runner.store.close()
    return stored


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="study folder (studies/ID)")
    parser.add_argument("--participants", type=int, default=12, help="how many (default %(default)s)")
    parser.add_argument("--db", required=True,
                        help="answer store for the simulated answers (SQLite path or URL; never the study's own)")
    parser.add_argument("--effect", action="append", default=[], metavar="METHOD=SHIFT",
                        help="shift of a method's mean rating, e.g. ProtoPool=0.5 (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.participants < 1:
        raise StudyError(f"--participants must be at least 1, got {args.participants}")
    n = simulate(args.study, args.participants, args.db, effects=_effects(args.effect), seed=args.seed)
    print(f"stored {n} simulated answers of {args.participants} participants in {args.db} "
          f"(worker ids sim-0001...; not collected data)")
    return 0
