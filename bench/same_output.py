"""Show that ``hrm-fhir evaluate`` gives byte-identical output at two versions of the package.

Runs ``evaluate --as-of 2026-11-27 --format json`` on the 20,000-patient practice of
``bench_evaluate.py``, the bundled practice, the golden and scenario bundles, and corrupted copies
of both practices (lines cut short, garbage, wrong types, missing references; the large one is
read by parallel workers, the small one in one process), once with the package as it was at
``--against REV`` (``git archive`` of its ``hrm_fhir/`` into ``bench/out/``, run with
``PYTHONPATH``) and once with the working tree's, and compares stdout, stderr and the exit status
byte for byte. Both outputs are kept in ``bench/out/same-output/``.

    .venv/bin/python bench/same_output.py --against 53fe59c
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

from bench_evaluate import AS_OF, OUT, practice

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
RUN = """
import sys
import hrm_fhir
try:
    from hrm_fhir.cli.main import main
except ModuleNotFoundError:  # before the package moves of issue 12
    from hrm_fhir.cli import main
package = sys.argv.pop(1)
if not hrm_fhir.__file__.startswith(package):
    sys.exit(f"imported {hrm_fhir.__file__}, not the package under {package}")
sys.argv[0] = "hrm-fhir"
main()
"""


def corrupted(source: Path, target: Path, seed: int = 9) -> Path:
    """A copy of an NDJSON folder with about one line in 200 damaged in a reproducible way (made
    once; delete ``target`` to remake it)."""
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    chance = random.Random(seed)  # noqa: S311 - reproducible damage, not security
    damages = [
        lambda line: line[: len(line) // 2] + b"\n",  # cut short
        lambda line: b"not json at all\n",
        lambda line: b"\xff\xfe" + line,  # not UTF-8
        lambda line: line.replace(b'"subject":{"reference":"Patient/', b'"subject":{"reference":"'),
        lambda line: line.replace(b'"status":"', b'"status":7,"x":"'),
        lambda line: line.replace(b'"effectiveDateTime":"', b'"effectiveDateTime":"20x'),
        lambda line: line.replace(b'"valueQuantity":{', b'"valueQuantity":{"value":"high",'),
        lambda line: line.replace(b'"authoredOn":"', b'"authoredOn":"31-'),
        lambda line: line.replace(b'"resourceType":"', b'"resourceType":"X'),
        lambda line: b"[]\n",
        lambda line: b"\n",
        lambda line: line + line,  # the same resource twice
    ]
    for path in sorted(source.glob("*.ndjson")):
        out = io.BytesIO()
        for line in path.read_bytes().splitlines(keepends=True):
            out.write(chance.choice(damages)(line) if chance.random() < 0.005 else line)
        out.write(b'{"resourceType":"Observation","status":"final"')  # no newline, cut short
        (partial / path.name).write_bytes(out.getvalue())
    partial.rename(target)
    return target


def inputs() -> dict[str, Path]:
    large = practice(20_000, 1)[0] / "ndjson"
    return {
        "practice-20000": large,
        "practice-bundled": FIXTURES / "practice" / "ndjson",
        "golden": FIXTURES / "golden" / "bundles",
        "scenarios": FIXTURES / "scenarios" / "bundles",
        "corrupted-20000": corrupted(large, OUT / "corrupted-s1-n20000"),
        "corrupted-bundled": corrupted(FIXTURES / "practice" / "ndjson", OUT / "corrupted-bundled"),
    }


def package_at(rev: str) -> Path:
    """``hrm_fhir/`` as committed at ``rev``, unpacked under bench/out/ (made once)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    tree = OUT / f"package-{commit[:12]}"
    if not (tree / "hrm_fhir").is_dir():
        archive = subprocess.run(
            ["git", "archive", commit, "hrm_fhir"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    return tree


def evaluate(package: Path, path: Path) -> tuple[bytes, bytes, int]:
    """stdout, stderr and exit status of one ``evaluate`` run of the package under ``package``."""
    env = {**os.environ, "PYTHONPATH": str(package)}
    command = [sys.executable, "-P", "-c", RUN, str(package),
               "evaluate", "--as-of", AS_OF.isoformat(), "--format", "json", str(path)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, cwd=ROOT, check=False)
    return done.stdout, done.stderr, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the git revision to compare with")
    args = parser.parse_args()
    before = package_at(args.against)
    kept = OUT / "same-output"
    kept.mkdir(exist_ok=True)
    differ = []
    for name, path in inputs().items():
        old, new = evaluate(before, path), evaluate(ROOT, path)
        for label, output in ((before.name, old), ("worktree", new)):
            for part, data in zip(("stdout", "stderr"), output[:2], strict=True):
                (kept / f"{name}.{label}.{part}").write_bytes(data)
        same = old == new
        digest = hashlib.sha256(new[0]).hexdigest()[:16]
        print(f"{name:<18} {'identical' if same else 'DIFFERENT':<10} stdout {len(new[0]):>11,} B "
              f"sha256 {digest}  stderr {len(new[1]):>7,} B  exit {new[2]}")  # fmt: skip
        if not same:
            differ.append(name)
    if differ:
        sys.exit(f"different output for {', '.join(differ)} (both kept in {kept})")
    print(f"all identical to {args.against} (both outputs kept in {kept})")


if __name__ == "__main__":
    main()
