"""Every YAML the toolkit reads refuses a key given twice (common/yamlfile.py) with one
line naming the key and both lines: a study spec (`versions: 2` ... `versions: 3` built 3
versions before), a training config and its `--set` values, an exclusion-rules file."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import ToolkitError
from common.yamlfile import DuplicateKeyError, load_yaml
from core.errors import UserFacingError
from core.training.config import load_config, parse_override
from study.errors import StudyError
from study.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = """kind: saliency
id: dup
versions: 2
items_per_version: 4
attention:
  count: 1
  max_failures: 0
versions: 3
"""


def test_loader_names_the_key_and_both_lines():
    with pytest.raises(DuplicateKeyError) as exc:
        load_yaml(SPEC, "spec.yaml")
    assert str(exc.value) == "spec.yaml: key 'versions' appears twice (line 3 and line 8); keep one"
    assert isinstance(exc.value, ToolkitError)


def test_nested_and_flow_mappings_too_but_not_merges_or_lists():
    with pytest.raises(DuplicateKeyError, match=r"key 'epochs' appears twice \(line 3 and line 4\)"):
        load_yaml("train:\n  joint:\n    epochs: 3\n    epochs: 4\n")
    with pytest.raises(DuplicateKeyError, match=r"key 'a' appears twice \(line 1 and line 1\)"):
        load_yaml("x: {a: 1, a: 2}\n")
    # a merge key may be overridden (that is what `<<` is for); equal values in a list are fine
    assert load_yaml("base: &b {lr: 1, wd: 2}\nrun:\n  <<: *b\n  lr: 3\nl: [1, 1]\n") == {
        "base": {"lr": 1, "wd": 2}, "run": {"lr": 3, "wd": 2}, "l": [1, 1]}
    assert load_yaml("a: 1\nb: {a: 2}\n") == {"a": 1, "b": {"a": 2}}   # same key, other mapping
    assert load_yaml("") is None


def test_study_spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    with pytest.raises(StudyError) as exc:
        load_spec(path)
    assert str(exc.value) == f"{path}: key 'versions' appears twice (line 3 and line 8); keep one"


def test_study_build_from_another_folder_writes_nothing(tmp_path):
    spec = tmp_path / "specs" / "dup.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "study", "build", str(spec), "--out", "studies/dup"],
                          cwd=elsewhere, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {spec}: key 'versions' appears twice (line 3 and line 8); keep one"]
    assert list(elsewhere.iterdir()) == []


def test_training_config_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  joint:\n    epochs: 3\n  joint:\n    epochs: 5\n")
    with pytest.raises(UserFacingError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: key 'joint' appears twice (line 2 and line 4); keep one"
    with pytest.raises(UserFacingError, match=r"key 'backbone' appears twice"):
        parse_override("train.joint.lr={backbone: 1e-4, backbone: 1e-3}")


def test_exclusion_rules_file(tmp_path):
    from study.analysis.cli import _load_mapping
    path = tmp_path / "rules.yaml"
    path.write_text("exclusions:\n  attention: true\n  attention: false\n")
    with pytest.raises(StudyError) as exc:
        _load_mapping(path)
    assert str(exc.value) == f"{path}: key 'attention' appears twice (line 2 and line 3); keep one"
