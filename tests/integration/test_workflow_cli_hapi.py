"""``hrm-fhir worklist`` against a real HAPI FHIR server: the CSV batch-messaging tools read, the
table and JSON, and patient details read at output time, never logged."""

from __future__ import annotations

import csv
import io
import logging

import orjson
import pytest
from click.testing import CliRunner

from hrm_fhir.cli.main import main
from tests.builders import rules
from tests.integration.harness import Harness
from tests.integration.practice import AS_OF, Practice, starter

pytestmark = pytest.mark.hapi
NHS = "9990001112"


def test_the_worklist_command_prints_csv_table_and_json(
    fhir_base: str,
    run_id: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = Harness(fhir_base, run_id, database_url)
    p: Practice = harness.practice
    resources = starter(p)
    for resource in resources:
        if resource.get("id") == p.pid("mtx"):
            resource["name"] = [{"use": "official", "family": "Example", "given": ["Ada"]}]
            resource["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}]
            resource["telecom"] = [
                {"system": "phone", "value": "0113 496 0000", "use": "home", "rank": 2},
                {"system": "phone", "value": "+447700900123", "use": "mobile", "rank": 1},
            ]
    harness.upload(resources)
    harness.sweep()
    harness.close()
    monkeypatch.setenv("HRM_FHIR_BASE_URL", fhir_base)
    monkeypatch.setenv("HRM_DATABASE_URL", database_url)
    caplog.set_level(logging.DEBUG)
    args = ["worklist", "--practice", p.org, "--as-of", AS_OF.isoformat()]

    result = CliRunner().invoke(main, [*args, "--format", "csv"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == [
        "NHS number",
        "Name",
        "Phone",
        "Preferred contact",
        "Tests needed",
        "Due date",
    ]
    [ada] = [r for r in rows if r["NHS number"] == NHS]
    assert (ada["Name"], ada["Phone"], ada["Preferred contact"]) == (
        "Ada Example",
        "+447700900123",
        "phone",
    )
    titles = [rules().catalogue.tests[t].title for t in ("fbc", "lft", "renal")]
    assert sorted(ada["Tests needed"].split("; ")) == sorted(titles)
    assert ada["Due date"] < AS_OF.isoformat()
    assert rows[0]["Name"] == "", "the out-of-range follow-up (no name recorded) comes first"

    table = CliRunner().invoke(main, [*args, "--format", "table"], catch_exceptions=False)
    assert table.exit_code == 0
    assert table.output.splitlines()[0].startswith("PRIORITY")
    assert "Ada Example" in table.output
    assert "out-of-range follow-up" in table.output

    as_json = CliRunner().invoke(main, [*args, "--format", "json"], catch_exceptions=False)
    document = orjson.loads(as_json.output)
    assert document["as_of"] == AS_OF.isoformat()
    [entry] = [e for e in document["entries"] if e["details"]["nhs_number"] == NHS]
    assert entry["stage"] == "to-contact"
    assert entry["tasks"][0]["version"]

    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (NHS, "Ada", "Example", "7700900123"):
        assert secret not in logged
