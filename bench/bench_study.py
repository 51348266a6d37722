"""Benchmark of the study engine: build a 180-item / 50-version study, run participants,
export answers and a Mechanical Turk batch. Prints seconds per stage.

    .venv/bin/python bench/bench_study.py [--participants 50] [--image-size 224]

The atlases are synthetic (tests/study_helpers.py): 2 data sets x 3 methods, 30 images
per combination, so the pool is 180 items; each of the 50 versions gets 10 items per
combination (60 + 2 attention checks).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from study.build import build_study  # noqa: E402
from study.export import export_answers  # noqa: E402
from study.folder import open_study  # noqa: E402
from study.platforms.mturk_export import export_mturk  # noqa: E402
from study.session import StudyRunner  # noqa: E402
from study_helpers import make_saliency_setup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        spec = make_saliency_setup(tmp, n_images=30, versions=50, id="bench", size=args.image_size)
        t_atlas = time.perf_counter() - t

        t = time.perf_counter()
        out = build_study(spec, tmp / "studies" / "bench")
        t_build = time.perf_counter() - t
        study = open_study(out)
        n_items = sum(1 for i in study.items.values() if i["kind"] != "attention")

        t = time.perf_counter()
        rebuilt = build_study(spec, tmp / "studies" / "bench2")
        t_rebuild = time.perf_counter() - t
        same = all((out / p.relative_to(rebuilt)).read_bytes() == p.read_bytes()
                   for p in rebuilt.rglob("*") if p.is_file())

        runner = StudyRunner.open(out)
        t = time.perf_counter()
        n_answers = 0
        for _ in range(args.participants):
            p = runner.start()
            while (item := runner.next_item(p.participant_id)) is not None:
                runner.record_answer(p.participant_id, item.item_id, runner.key[item.item_id].get("expected", "4"), 1000)
                n_answers += 1
            runner.finish(p.participant_id)
        t_run = time.perf_counter() - t

        t = time.perf_counter()
        rows = export_answers(study, runner.store, tmp / "answers.csv")
        t_export = time.perf_counter() - t
        t = time.perf_counter()
        export_mturk(study, "https://cdn.example.org/bench/", tmp / "mturk")
        t_mturk = time.perf_counter() - t

    print(f"synthetic atlases (6 x 30 images, {args.image_size}px): {t_atlas:.2f} s")
    print(f"build: {n_items} items, {len(study.versions)} versions: {t_build:.2f} s "
          f"(rebuild {t_rebuild:.2f} s, byte-identical: {same})")
    print(f"participants: {args.participants} x {len(study.versions[0])} answers = {n_answers} answers in {t_run:.2f} s "
          f"({n_answers / t_run:.0f} answers/s, SQLite WAL, synchronous=FULL)")
    print(f"export-answers: {rows} rows in {t_export:.2f} s")
    print(f"export-mturk: {len(study.versions)} HITs in {t_mturk:.2f} s")


if __name__ == "__main__":
    main()
