"""The Bulk Data client's error paths, which a real server cannot be made to produce on demand:
throttled and failing status polls, an expired job, error outputs, downloads that break off or
fail their checksum, timeouts and interruptions. The happy paths run against HAPI
(tests/integration/test_export_hapi.py)."""

from __future__ import annotations

import hashlib
from base64 import b64encode
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import requests
import responses
from click.testing import CliRunner
from responses import matchers

from hrm_fhir.adapters.fhir.bulk_export import BulkExporter
from hrm_fhir.adapters.fhir.bulk_job import (
    MANIFEST,
    BulkExportError,
    DownloadError,
    ExportJobGone,
    ExportRequest,
    Silent,
)
from hrm_fhir.adapters.fhir.fhir_auth import SMARTBackendAuth
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.cli.main import main
from hrm_fhir.errors import FHIRTemporaryError
from tests.adapters.fhir.payloads import BASE

STATUS = f"{BASE}/$export-poll-status?_jobId=j1"
FILE = f"{BASE}/Binary/b1"
LINES = b'{"resourceType":"Patient","id":"p1"}\n{"resourceType":"Patient","id":"p2"}\n'
NOW = "2026-12-04T10:00:00.000+00:00"


class Time:
    """A clock that moves only when the exporter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def time_() -> Time:
    return Time()


def exporter(gateway: FHIRGateway, time_: Time, **options: Any) -> BulkExporter:
    settings: dict[str, Any] = {"poll_ceiling": 10.0, "timeout": 600.0, **options}
    return BulkExporter(gateway, clock=time_.clock, sleep=time_.sleep, **settings)


def manifest(
    output: list[dict[str, Any]] | None = None, error: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "transactionTime": NOW,
        "request": f"{BASE}/$export",
        "requiresAccessToken": True,
        "output": [{"type": "Patient", "url": FILE}] if output is None else output,
        "error": error or [],
    }


def kick_off(mock: responses.RequestsMock) -> None:
    mock.get(
        f"{BASE}/$export",
        status=202,
        headers={"Content-Location": STATUS},
        match=[
            matchers.header_matcher(
                {
                    "Prefer": "respond-async",
                    "Accept": "application/fhir+json",
                    "Cache-Control": "no-cache",  # never an earlier identical job's files
                }
            )
        ],
    )


def delete(mock: responses.RequestsMock, status: int = 202) -> None:
    mock.delete(STATUS, status=status)


def outcome(code: str, text: str, severity: str = "error") -> dict[str, Any]:
    issue = {"severity": severity, "code": code, "diagnostics": text}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def written(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads((folder / MANIFEST).read_bytes())
    return result


def test_a_throttled_status_poll_waits_what_retry_after_asks_up_to_the_ceiling(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, status=202, headers={"Retry-After": "3", "X-Progress": "50%"})
    mock.get(STATUS, status=429, headers={"Retry-After": "120"})
    mock.get(STATUS, json=manifest())
    mock.get(FILE, body=LINES)
    delete(mock)

    result = exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")

    assert time_.sleeps == [3.0, 10.0]
    assert result.status == "complete"
    assert result.job == "deleted"
    assert (tmp_path / "out" / "Patient-1.ndjson").read_bytes() == LINES


def test_without_retry_after_the_polls_back_off_1_2_4_seconds(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    for _ in range(3):
        mock.get(STATUS, status=202)
    mock.get(STATUS, json=manifest(output=[]))
    delete(mock)

    exporter(gateway, time_, poll_ceiling=3.0).export(ExportRequest(), tmp_path / "out")

    assert time_.sleeps == [1.0, 2.0, 3.0]


def test_503_on_status_is_retried_and_then_given_up_deleting_the_job(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    for _ in range(3):
        mock.get(STATUS, status=503, headers={"Retry-After": "2"})
    delete(mock)

    with pytest.raises(FHIRTemporaryError, match="HTTP 503 3 times in a row"):
        exporter(gateway, time_, transient_polls=2).export(ExportRequest(), tmp_path / "out")

    assert time_.sleeps == [2.0, 2.0]
    assert mock.calls[-1].request.method == "DELETE"
    assert written(tmp_path / "out")["status"] == "failed"


def test_a_503_between_progress_answers_does_not_end_the_export(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, status=503, json=outcome("transient", "busy"))
    mock.get(STATUS, status=202)
    mock.get(STATUS, status=503)
    mock.get(STATUS, json=manifest(output=[]))
    delete(mock)

    result = exporter(gateway, time_, transient_polls=1).export(ExportRequest(), tmp_path / "out")

    assert result.status == "complete"


def test_a_job_that_failed_on_the_server_is_reported_with_its_outcome(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, status=500, json=outcome("processing", "Binary storage is full"))
    delete(mock, 404)

    with pytest.raises(BulkExportError, match=r"failed on the server.*Binary storage is full"):
        exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")

    assert written(tmp_path / "out")["job"] == "gone"


def test_an_expired_job_is_named_as_such(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, status=410, json=outcome("not-found", "expired"))
    delete(mock, 410)

    with pytest.raises(ExportJobGone, match="expired or was deleted"):
        exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")


def test_an_export_that_runs_past_the_timeout_fails_and_deletes_the_job(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, status=202, headers={"Retry-After": "30"})
    delete(mock)

    with pytest.raises(BulkExportError, match="did not finish within 45 s"):
        exporter(gateway, time_, poll_ceiling=10.0, timeout=45.0).export(
            ExportRequest(), tmp_path / "out"
        )

    assert sum(time_.sleeps) <= 45.0
    assert [c.request.method for c in mock.calls][-1] == "DELETE"


def test_an_interrupted_export_deletes_the_job_and_says_so(
    mock: responses.RequestsMock, gateway: FHIRGateway, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, status=202)
    delete(mock)

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        BulkExporter(gateway, sleep=interrupt).export(ExportRequest(), tmp_path / "out")

    assert written(tmp_path / "out")["status"] == "interrupted"
    assert written(tmp_path / "out")["job"] == "deleted"


def test_error_outputs_are_read_issue_by_issue(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    errors = f"{BASE}/Binary/e1"
    kick_off(mock)
    mock.get(
        STATUS,
        json=manifest(error=[{"type": "OperationOutcome", "url": errors}]),
    )
    mock.get(FILE, body=LINES)
    lines = [
        outcome("processing", "Observation/o9 could not be read"),
        outcome("informational", "Patient/p3 was exported without its Goals", "warning"),
    ]
    mock.get(errors, body=b"\n".join(orjson.dumps(o) for o in lines))
    delete(mock)

    result = exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")

    assert [(i.severity, i.where) for i in result.issues] == [
        ("error", "error/OperationOutcome-1.ndjson:1"),
        ("warning", "error/OperationOutcome-1.ndjson:2"),
    ]
    assert [i.diagnostics for i in result.error_issues] == ["Observation/o9 could not be read"]
    assert written(tmp_path / "out")["error"][0]["lines"] == 2


def test_the_cli_prints_the_servers_errors_and_exits_3(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    errors = f"{BASE}/Binary/e1"
    kick_off(mock)
    mock.get(STATUS, json=manifest(error=[{"type": "OperationOutcome", "url": errors}]))
    mock.get(FILE, body=LINES)
    mock.get(errors, body=orjson.dumps(outcome("processing", "Observation/o9 unreadable")))
    delete(mock)

    result = CliRunner().invoke(
        main, ["export", "--fhir-base", BASE, "--out", str(tmp_path / "out")]
    )

    assert result.exit_code == 3, result.output
    assert "error (processing) at error/OperationOutcome-1.ndjson:1" in result.stderr
    assert "the export is incomplete: 1 error(s)" in result.stderr
    assert "downloading" not in result.stderr  # no progress bar off a terminal
    assert orjson.loads(result.stdout)["resources"] == {"Patient": 2}


def test_a_download_cut_mid_line_is_fetched_again(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, json=manifest())
    mock.get(FILE, body=LINES[:50])
    mock.get(FILE, body=LINES)
    delete(mock)

    result = exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")

    record = result.output[0]
    assert (record.lines, record.bytes) == (2, len(LINES))
    assert record.sha256 == hashlib.sha256(LINES).hexdigest()
    assert not list((tmp_path / "out").glob("*.part"))


def test_a_download_that_keeps_breaking_off_fails_the_export(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, json=manifest())
    mock.get(FILE, body=requests.exceptions.ChunkedEncodingError("connection reset"))
    mock.get(FILE, body=LINES[:50])
    delete(mock)

    with pytest.raises(DownloadError, match="did not arrive whole after 2 attempts"):
        exporter(gateway, time_, download_attempts=2).export(ExportRequest(), tmp_path / "out")

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST]
    assert written(tmp_path / "out")["status"] == "failed"


def test_a_body_failing_the_servers_digest_is_fetched_again(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    good = b64encode(hashlib.sha256(LINES).digest()).decode()
    bad = b64encode(hashlib.sha256(b"other").digest()).decode()
    kick_off(mock)
    mock.get(STATUS, json=manifest())
    mock.get(FILE, body=LINES, headers={"Content-Digest": f"sha-256=:{bad}:"})
    mock.get(FILE, body=LINES, headers={"Digest": f"SHA-256={good}"})
    delete(mock)

    result = exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")

    assert result.output[0].sha256 == hashlib.sha256(LINES).hexdigest()
    assert len(time_.sleeps) == 1


def test_a_checksum_that_never_matches_fails_the_export(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    bad = b64encode(hashlib.sha256(b"other").digest()).decode()
    kick_off(mock)
    mock.get(STATUS, json=manifest())
    mock.get(FILE, body=LINES, headers={"Content-Digest": f"sha-256=:{bad}:"})
    delete(mock)

    with pytest.raises(DownloadError, match="SHA-256 differs"):
        exporter(gateway, time_, download_attempts=1).export(ExportRequest(), tmp_path / "out")


def test_fewer_resources_than_the_manifest_counts_is_a_short_download(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, json=manifest(output=[{"type": "Patient", "url": FILE, "count": 3}]))
    mock.get(FILE, body=LINES)
    delete(mock)

    with pytest.raises(DownloadError, match="2 resources arrived, the manifest counts 3"):
        exporter(gateway, time_, download_attempts=1).export(ExportRequest(), tmp_path / "out")


def test_a_status_url_off_the_base_is_never_sent_credentials(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    mock.get(f"{BASE}/$export", status=202, headers={"Content-Location": "https://else.test/poll"})

    with pytest.raises(BulkExportError, match=r"https://else\.test leaves the configured base"):
        exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")

    assert len(mock.calls) == 1  # neither polled nor deleted there


def test_smart_credentials_go_to_the_server_and_never_to_other_storage(
    mock: responses.RequestsMock, private_pem: bytes, time_: Time, tmp_path: Path
) -> None:
    token_url = "https://auth.test/token"  # noqa: S105 - an address, not a secret
    stored = "https://storage.test/exports/p.ndjson?signature=abc"
    auth = SMARTBackendAuth(token_url, "hrm-fhir-sweeper", private_pem, "key-1")
    gateway = FHIRGateway(BASE, auth=auth)
    reply = {"access_token": "tok", "token_type": "Bearer", "expires_in": 300}
    mock.post(token_url, json=reply)
    bearer = [matchers.header_matcher({"Authorization": "Bearer tok"})]
    mock.get(f"{BASE}/$export", status=202, headers={"Content-Location": STATUS}, match=bearer)
    signed = {**manifest(output=[{"type": "Patient", "url": stored}]), "requiresAccessToken": False}
    mock.get(STATUS, json=signed, match=bearer)
    mock.get(stored, body=LINES)
    mock.delete(STATUS, status=202, match=bearer)

    exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")

    download = next(c for c in mock.calls if c.request.url == stored)
    assert "Authorization" not in download.request.headers
    gateway.close()


def test_a_file_without_credentials_must_come_over_https(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    plain = {**manifest(output=[{"type": "Patient", "url": "http://storage.test/p"}])}
    mock.get(STATUS, json={**plain, "requiresAccessToken": False})
    delete(mock)

    with pytest.raises(DownloadError, match="must be on https"):
        exporter(gateway, time_).export(ExportRequest(), tmp_path / "out")


def test_an_export_never_goes_into_a_folder_holding_files(
    gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    (tmp_path / "old.ndjson").write_text("{}\n")

    with pytest.raises(BulkExportError, match="not an empty folder"):
        exporter(gateway, time_).export(ExportRequest(), tmp_path)


def test_a_refused_kick_off_carries_the_servers_reason(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    mock.get(f"{BASE}/$export", status=400, json=outcome("not-supported", "_type=Foo unknown"))

    with pytest.raises(Exception, match="HTTP 400") as raised:
        exporter(gateway, time_).export(ExportRequest(types=("Patient",)), tmp_path / "out")

    assert getattr(raised.value, "outcome", None) == "_type=Foo unknown"


def test_patients_are_named_in_a_parameters_post(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    mock.post(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    mock.get(STATUS, json=manifest(output=[]))
    delete(mock)

    request = ExportRequest(patients=("Patient/p1", "p2"), since="2026-01-01T00:00:00Z")
    exporter(gateway, time_).export(request, tmp_path / "out")

    sent = orjson.loads(mock.calls[0].request.body)
    assert {"name": "_since", "valueString": "2026-01-01T00:00:00Z"} in sent["parameter"]
    assert [p["valueReference"] for p in sent["parameter"] if p["name"] == "patient"] == [
        {"reference": "Patient/p1"},
        {"reference": "Patient/p2"},
    ]


@pytest.mark.parametrize("since", ["2026-01-01", "2026-01-01T10:00:00", "yesterday"])
def test_since_must_be_an_instant_with_a_zone(since: str) -> None:
    with pytest.raises(ValueError, match="FHIR instant"):
        ExportRequest(since=since)


def test_type_filters_go_out_as_repeated_typefilter_parameters(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, json=manifest(output=[]))
    delete(mock)
    filters = ("Condition?code=http://snomed.info/sct|1,http://snomed.info/sct|2", "Goal?")

    request = ExportRequest(types=("Patient", "Condition", "Goal"), type_filters=filters)
    exporter(gateway, time_).export(request, tmp_path / "out")

    sent = parse_qs(urlsplit(mock.calls[0].request.url).query)
    assert sent["_typeFilter"] == list(filters)
    assert sent["_type"] == ["Patient,Condition,Goal"]


def test_a_type_filter_of_a_type_not_exported_is_refused() -> None:
    with pytest.raises(ValueError, match="type filter"):
        ExportRequest(types=("Patient",), type_filters=("Condition?code=x",))


def test_an_interrupted_download_leaves_no_half_file(
    mock: responses.RequestsMock, gateway: FHIRGateway, time_: Time, tmp_path: Path
) -> None:
    kick_off(mock)
    mock.get(STATUS, json=manifest())
    mock.get(FILE, body=LINES)
    delete(mock)

    class Interrupting(Silent):
        def received(self, size: int) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        exporter(gateway, time_, progress=Interrupting()).export(ExportRequest(), tmp_path / "out")

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST]
    assert written(tmp_path / "out")["status"] == "interrupted"
