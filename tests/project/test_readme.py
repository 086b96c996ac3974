"""Every command the README shows works as written.

The ``sh`` blocks of README.md are read line by line as a shell would (``export`` and ``VAR=value``
prefixes set the environment, globs expand, ``#`` starts a comment). Every ``hrm-fhir`` command
must parse (options, choices, types) and every repository path it names must exist; every ``make``
target must be in the Makefile. The commands that need no server (evaluate, rules, fixtures and
the monthly report on the synthetic history) are run, in a scratch directory where ``fixtures/``
is the repository's and ``/tmp/`` paths point into the scratch directory. A path argument (an
input) must exist.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hrm_fhir.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HRM_FHIR = ".venv/bin/hrm-fhir"
OFFLINE = {"evaluate", "rules", "fixtures", "report"}
"""Commands that need no FHIR server (a report needs the database the line names)."""
SCRATCH = "/tmp/"  # noqa: S108 - where README examples write; the test moves it into tmp_path


@dataclass(frozen=True)
class Example:
    line: str
    program: str
    args: list[str]
    env: dict[str, str]


def _blocks(text: str) -> Iterator[list[str]]:
    """The lines of each ```sh block."""
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        yield block.splitlines()


def examples() -> list[Example]:
    found = []
    for lines in _blocks(README.read_text()):
        exported: dict[str, str] = {}
        for line in lines:
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0] == "export":  # one variable; a $(...) value is kept as text
                name, _, value = line.strip().removeprefix("export ").partition("=")
                exported[name] = value
                continue
            env = dict(exported)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                name, value = words.pop(0).split("=", 1)
                env[name] = value
            found.append(Example(line.strip(), words[0], words[1:], env))
    return found


EXAMPLES = examples()


def _expanded(args: list[str]) -> list[str]:
    """Globs expanded from the repository root, as the shell does there."""
    out: list[str] = []
    for arg in args:
        if "*" in arg:
            matches = sorted(glob.glob(arg, root_dir=ROOT))
            assert matches, f"{arg} matches nothing"
            out += matches
        else:
            out.append(arg)
    return out


def _command(args: list[str]) -> click.Context:
    """The hrm-fhir command ``args`` name, its arguments parsed (a usage error raises). The
    groups take no options of their own, so the first word is always the next command."""
    command: click.Command = main
    name, rest = "hrm-fhir", list(args)
    while isinstance(command, click.Group):
        name, *rest = rest
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"no command {name!r}"
        command = found
    return command.make_context(name, rest)


def test_the_readme_shows_commands() -> None:
    programs = {e.program for e in EXAMPLES}
    assert {HRM_FHIR, "make"} <= programs
    assert len([e for e in EXAMPLES if e.program == HRM_FHIR]) >= 15


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.line[:70] for e in EXAMPLES])
def test_every_readme_command_parses_and_names_paths_that_exist(example: Example) -> None:
    if example.program == "make":
        targets = re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M)
        assert set(example.args) <= set(targets), example.line
        return
    assert example.program == HRM_FHIR, f"not a command the README should show: {example.line}"
    context = _command(_expanded(example.args))
    for param in context.command.params:
        if isinstance(param, click.Argument) and isinstance(param.type, click.Path):
            values = context.params[param.name or ""]
            for value in values if isinstance(values, tuple) else (values,):
                assert (ROOT / value).exists(), f"{value} in {example.line!r} does not exist"


def test_the_offline_commands_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In README order, so the report reads the history the line before it wrote."""
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ran = []
    for example in EXAMPLES:
        if example.program != HRM_FHIR or not example.args or example.args[0] not in OFFLINE:
            continue
        if example.args[0] == "report" and "HRM_DATABASE_URL" not in example.env:
            continue  # the report on what a live sweep recorded
        scratch = f"{tmp_path}{SCRATCH}"
        args = [a.replace(SCRATCH, scratch) for a in _expanded(example.args)]
        env = {k: v.replace(SCRATCH, scratch) for k, v in example.env.items()}
        for name in ("HRM_DATABASE_URL", "HRM_PCNS", "HRM_PRACTICE"):
            monkeypatch.delenv(name, raising=False)
        result = CliRunner(env=env).invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, f"{example.line}\n{result.output}"
        ran.append(example.args[:2])
    assert ["fixtures", "history"] in ran
    assert ["report", "monthly"] in ran
    assert any(r[0] == "evaluate" for r in ran)
    assert os.listdir(tmp_path / "reports")
