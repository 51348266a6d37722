"""One dispatcher for `python -m core` and `python -m study`, shared option groups, one
device rule."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from common.cli import dispatch
from common.errors import ToolkitError
from core.device import resolve_device


def _command_module(tmp_path, monkeypatch, body: str) -> str:
    (tmp_path / "fake_command.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fake_command"


def test_dispatch_one_line_errors_and_usage(tmp_path, monkeypatch, capsys):
    module = _command_module(tmp_path, monkeypatch, "from study.errors import StudyError\n"
                                                    "def main(argv):\n"
                                                    "    if argv: raise StudyError('spec.yaml: field x: bad')\n"
                                                    "    return 0\n")
    commands = {"go": (module, "Go somewhere.")}
    assert dispatch("python -m x", commands, ["go"]) == 0
    assert dispatch("python -m x", commands, ["go", "now"]) == 1
    assert capsys.readouterr().err == "error: spec.yaml: field x: bad\n"   # any ToolkitError, one line
    assert dispatch("python -m x", commands, ["nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'nope'" in err and "go               Go somewhere." in err
    assert dispatch("python -m x", commands, []) == 0
    assert capsys.readouterr().out.startswith("usage: python -m x COMMAND")


def test_core_and_study_use_the_same_dispatcher_from_another_folder(tmp_path):
    for package in ("core", "study"):
        run = subprocess.run([sys.executable, "-m", package, "no-such-command"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and f"usage: python -m {package} COMMAND" in run.stderr
        assert "Traceback" not in run.stderr


def test_shared_options_accept_both_progress_spellings():
    from core.atlas.build_cli import build_parser as atlas_parser
    from core.training.evaluate_cli import build_parser as evaluate_parser

    base = ["--checkpoint", "m.pt"]
    for flag in ("--quiet", "--no-progress"):
        assert evaluate_parser().parse_args(base + [flag]).no_progress is True
        assert atlas_parser().parse_args(base + ["--out", "a", flag]).quiet is True
    assert evaluate_parser().parse_args(base).device == "auto"
    assert atlas_parser().parse_args(base + ["--out", "a"]).device == "auto"


def test_one_device_rule():
    from core.training.distributed import resolve_device as training_rule

    assert training_rule is resolve_device
    expected = torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    for auto in ("auto", None, ""):
        assert resolve_device(auto) == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto", local_rank=0) == torch.device("cuda:0")


def test_toolkit_errors_caught_by_the_dispatcher_are_the_one_root():
    from core.errors import UserFacingError
    from study.errors import StudyError

    assert issubclass(UserFacingError, ToolkitError) and issubclass(StudyError, ToolkitError)
    with pytest.raises(SystemExit):   # argparse's own usage errors stay argparse's (exit 2)
        from core.training.evaluate_cli import build_parser
        build_parser().parse_args([])


@pytest.mark.parametrize("command", [["core", "make-synthetic"], ["core", "atlas"], ["core", "import-checkpoint"],
                                     ["study", "build"], ["study", "analyze"], ["study", "prereg"]])
def test_overwrite_and_force_are_one_switch(command, tmp_path):
    """Every command that replaces its output accepts --overwrite and --force alike."""
    run = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "--overwrite, --force" in run.stdout, run.stderr


def test_add_overwrite_keeps_the_commands_attribute():
    import argparse

    from common.cli import add_overwrite

    for dest in ("force", "overwrite"):
        p = argparse.ArgumentParser()
        add_overwrite(p, dest=dest)
        assert getattr(p.parse_args(["--force"]), dest) is getattr(p.parse_args(["--overwrite"]), dest) is True
        assert getattr(p.parse_args([]), dest) is False
