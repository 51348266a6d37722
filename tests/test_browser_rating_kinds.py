"""The participant page in headless Chromium for the kinds built from the cheap test atlases:
saliency, likert and pairwise studies, each answered by two participants by clicking (the
new kinds have theirs in test_study_new_kinds.py; consistency in test_e2e_browser.py)."""
from __future__ import annotations

import pytest

from study.build import build_study
from study_helpers import make_saliency_setup
from test_study_new_kinds import answer_two_participants, serve_workspace

KINDS_CHEAP = ("saliency", "likert", "pairwise")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m app` on a workspace holding one small study of each kind, and a headless Chromium."""
    import app_helpers
    from servers import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    base = tmp_path_factory.mktemp("served")
    home = app_helpers.workspace(base / "ws")
    for kind in KINDS_CHEAP:
        tmp = base / kind
        tmp.mkdir()
        spec = make_saliency_setup(tmp, datasets=("birds",), n_images=12, size=64, kind=kind, id=f"cheap-{kind}",
                                   pool_size=4, items_per_version=2, versions=2,
                                   attention={"count": 1, "max_failures": 0})
        build_study(spec, home / "studies" / f"cheap-{kind}")
    with serve_workspace(home, base) as out:
        yield out


@pytest.mark.parametrize("kind", KINDS_CHEAP)
def test_two_participants_answer_in_chromium(kind, served, artifacts_dir):
    url, home, browser = served
    answer_two_participants(url, home, browser, f"cheap-{kind}", kind, artifacts_dir)
