"""`python -m study power` plans every registered question kind through the kind's analysis
(its declared power simulation), with small simulation counts so each run is fast."""
from __future__ import annotations

import importlib
import json
import re

import pytest

from study.analysis.power_cli import main as power_main
from study.errors import StudyError
from study.kinds import KINDS, REGISTRY
from study.kinds.analyses import KindAnalysis

POWER = re.compile(r"power (0\.\d{3}|1\.000) ± (0\.\d{3})")
RATING_ARGS = ["--assume", "A=1,1,2,3,3", "--assume", "B=3,3,2,1,1", "--target", "A",
               "--items", "4", "--test", "mannwhitney", "--sims", "50", "--max-participants", "64"]
ASSUMED_ARGS = ["--odds-ratio", "4", "--items", "6", "--sims", "10", "--participants", "12"]


def _args(kind: str) -> list[str]:
    """Rating kinds plan from score distributions; the others from assumed parameters
    (the base KindAnalysis.power_plan)."""
    simulated = type(REGISTRY[kind].analysis()).power_plan is KindAnalysis.power_plan
    return ASSUMED_ARGS if simulated else RATING_ARGS


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_prints_a_power_figure(kind, capsys):
    assert power_main(["--kind", kind, *_args(kind)]) == 0
    out = capsys.readouterr().out
    m = POWER.search(out)
    assert m, out
    assert 0.0 <= float(m.group(1)) <= 1.0 and float(m.group(2)) >= 0.0
    assert "participants" in out


def test_assumed_kinds_declare_their_simulation():
    for kind in KINDS:
        module, _, fn = REGISTRY[kind].analysis().power_simulation.rpartition(".")
        assert callable(getattr(importlib.import_module(module), fn)), kind


def test_distinction_power_grows_with_the_effect_and_search_writes_json(tmp_path, capsys):
    def power(odds_ratio: str) -> float:
        power_main(["--kind", "hive_distinction", "--odds-ratio", odds_ratio, "--k", "4",
                    "--items", "6", "--sims", "20", "--participants", "16"])
        return float(POWER.search(capsys.readouterr().out).group(1))
    assert power("8") > power("1")
    out = tmp_path / "plan.json"
    assert power_main(["--kind", "pairwise", "--log-odds-ratio", "1.5", "--items", "8", "--sims", "40",
                       "--target", "P", "--baseline", "Q", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["kind"] == "pairwise" and doc["plan"][0]["baseline"] == "Q"
    assert doc["plan"][0]["participants"] >= 4 and doc["parameters"]["log_odds_ratio"] == 1.5
    assert "study needs" in capsys.readouterr().out


def test_unknown_kind_is_one_error_naming_the_known_kinds():
    with pytest.raises(StudyError) as err:
        power_main(["--kind", "nope", *ASSUMED_ARGS])
    msg = str(err.value)
    assert "\n" not in msg and "'nope'" in msg
    assert all(k in msg for k in KINDS)


def test_assumed_kind_needs_its_effect_and_refuses_a_pilot(tmp_path):
    with pytest.raises(StudyError, match="--log-odds-ratio"):
        power_main(["--kind", "hive_agreement", "--items", "6", "--sims", "10", "--participants", "8"])
    with pytest.raises(StudyError, match="not --pilot"):
        power_main(["--kind", "hive_agreement", "--pilot", str(tmp_path / "a.csv"), *ASSUMED_ARGS])
