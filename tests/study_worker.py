"""Subprocess participant for the store tests: `python study_worker.py STUDY DB MODE ...`.

MODE `run N`: N participants, each answering every item (every answer sent twice).
MODE `slow TOKEN PAUSE`: one invited participant answering with PAUSE seconds between answers, printing `answered K` after
each committed answer, so the parent can SIGKILL it mid-study.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.session import StudyRunner  # noqa: E402


def answer_for(runner, item_id):
    info = runner.key[item_id]
    return info.get("expected", runner.study.option_values[0])


def main():
    study, db, mode = sys.argv[1:4]
    runner = StudyRunner.open(study, db)
    if mode == "run":
        for _ in range(int(sys.argv[4])):
            p = runner.start()
            while (item := runner.next_item(p.participant_id)) is not None:
                runner.record_answer(p.participant_id, item.item_id, answer_for(runner, item.item_id), 5)
                runner.record_answer(p.participant_id, item.item_id, answer_for(runner, item.item_id), 5)
            runner.finish(p.participant_id)
        print("done", flush=True)
    elif mode == "slow":
        p = runner.start(token=sys.argv[4])
        k = 0
        while (item := runner.next_item(p.participant_id)) is not None:
            runner.record_answer(p.participant_id, item.item_id, answer_for(runner, item.item_id), 5)
            k += 1
            print(f"answered {k}", flush=True)
            time.sleep(float(sys.argv[5]))
        print("finished", flush=True)


if __name__ == "__main__":
    main()
