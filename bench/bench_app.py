"""Server-side render times of the app (Streamlit AppTest, no browser, no network).

    .venv/bin/python bench/bench_app.py [--home DIR] [--repeats 20]

1. Class page: the Models page of an atlas switching between classes, after one warm-up
   pass over every class (atlas and patches cached). Target: median <= 300 ms.
2. Question step: a participant clicks an answer; the time covers storing the answer
   (committed to SQLite) and rendering the next question. Target: median <= 200 ms.

Workspace: --home, else the demo workspace .demo/ when it is complete, else the small
workspace the app tests build (random tiny models, about 20 s to build).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
MAIN = str(ROOT / "app" / "main.py")


def _stats(times: list[float]) -> str:
    ms = sorted(1000 * t for t in times)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"median {statistics.median(ms):6.1f} ms   p90 {p90:6.1f} ms   max {ms[-1]:6.1f} ms   (n={len(ms)})"


def bench_class_page(repeats: int, password: str) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.text_input(key="password").input(password)
    at.button[0].click().run()
    at.sidebar.radio(key="page").set_value("Models").run()
    classes = at.selectbox(key="class").options
    for c in range(len(classes)):  # warm-up: every class once
        at.selectbox(key="class").set_value(c).run()
    times = []
    for i in range(repeats):
        sel = at.selectbox(key="class").set_value(i % len(classes))
        t = time.perf_counter()
        sel.run()
        times.append(time.perf_counter() - t)
        assert not at.exception
    return times


def bench_question_step(study: str, key: dict, rounds: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    times: list[float] = []
    while len(times) < rounds:
        at = AppTest.from_file(MAIN, default_timeout=120)
        at.query_params["study"] = study
        at.run()
        at.button(key="consent").click().run()
        at.button(key="instructions").click().run()
        first = True
        while True:
            buttons = [b for b in at.button if b.key and b.key.startswith("answer-")]
            if not buttons:
                break
            item = buttons[0].key.split("-")[1]
            info = key[item]
            value = info["expected"] if info["kind"] == "attention" else buttons[0].key.split("-", 2)[2]
            click = at.button(key=f"answer-{item}-{value}").click()
            t = time.perf_counter()
            click.run()
            elapsed = time.perf_counter() - t
            if not first:  # the first step of a session warms its caches
                times.append(elapsed)
            first = False
            assert not at.exception
    return times[:rounds]


def main() -> int:
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="workspace to measure (copied; the original is not changed)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.home:
        source = Path(args.home)
    elif (ROOT / ".demo" / "demo.json").is_file():
        source = ROOT / ".demo"
    else:
        import app_helpers

        t = time.perf_counter()
        source = app_helpers.template()
        print(f"built the test workspace in {time.perf_counter() - t:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="bench-app-")) / "ws"
    shutil.copytree(source, work, symlinks=True, ignore=shutil.ignore_patterns("answers.sqlite*"))
    os.environ.update(PROTOPROTO_HOME=str(work), PROTOPROTO_PASSWORD="bench-password")
    os.environ.pop("PROTOPROTO_DB", None)
    try:
        print(f"workspace: {source}")
        print(f"class page (Models, cached atlas):   {_stats(bench_class_page(args.repeats, 'bench-password'))}"
              "   target median <= 300 ms")
        study = "demo-saliency"
        key = json.loads((work / "studies" / study / "private" / "key.json").read_text())["items"]
        print(f"question -> next question ({study}): {_stats(bench_question_step(study, key, args.repeats))}"
              "   target median <= 200 ms")
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
