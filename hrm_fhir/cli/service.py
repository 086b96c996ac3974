"""The HTTP service and the scheduler (hrm_fhir/web/app.py, hrm_fhir/web/scheduling.py)."""

from __future__ import annotations

import signal

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--with-scheduler",
    is_flag=True,
    help="Also run the scheduled sweeps in this process (run one such process only).",
)
def serve(host: str, port: int, with_scheduler: bool) -> None:
    """Serve the HTTP API under waitress until Ctrl-C or SIGTERM, logging JSON lines."""
    import waitress  # type: ignore[import-untyped]

    from hrm_fhir.logs import configure_logging
    from hrm_fhir.web.app import create_app
    from hrm_fhir.web.scheduling import build_scheduler
    from hrm_fhir.web.state import service_state

    configure_logging()
    app = create_app()
    scheduler = build_scheduler(app) if with_scheduler else None
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if scheduler is not None:
            scheduler.start()
        # waitress refuses a larger body itself (413) before buffering it.
        limit = service_state(app).settings.max_request_bytes
        waitress.serve(app, host=host, port=port, max_request_body_size=limit)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        service_state(app).close()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    """waitress stops on SystemExit as on Ctrl-C; a running sweep then finishes before exit."""
    raise SystemExit(0)


@click.command()
def scheduler() -> None:
    """Run the scheduled sweeps in the foreground until interrupted, logging JSON lines."""
    from hrm_fhir.logs import configure_logging
    from hrm_fhir.web.app import create_app
    from hrm_fhir.web.scheduling import run_scheduler
    from hrm_fhir.web.state import service_state

    configure_logging()
    app = create_app()
    try:
        run_scheduler(app)
    finally:
        service_state(app).close()
