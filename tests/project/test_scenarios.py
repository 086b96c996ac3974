"""The example scenarios (copied into fixtures/scenarios) pass their own checker against the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _executable() -> str:
    beside = Path(sys.executable).with_name("hrm-fhir")
    found = str(beside) if beside.exists() else shutil.which("hrm-fhir")
    assert found, "the hrm-fhir console script is not installed"
    return found


@pytest.mark.parametrize(("folder", "expectations"), [("scenarios", 15), ("golden", 32)])
def test_scenarios_pass_their_checker(folder: str, expectations: int) -> None:
    """The shared example scenarios, and the project's own golden ones, through the CLI."""
    run = subprocess.run(
        [sys.executable, str(FIXTURES / folder / "check.py"), _executable()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    passed, failed = (int(part.split()[0]) for part in last.split(", "))
    assert failed == 0
    assert passed == expectations
