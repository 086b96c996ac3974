"""The export's progress is drawn on a terminal only."""

from __future__ import annotations

import io

from hrm_fhir.cli.progress import TerminalProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_servers_progress_then_a_bar_over_the_files() -> None:
    screen = Terminal()
    progress = TerminalProgress(screen)

    progress.waiting("Build in progress - 40%", 12.4)
    progress.file_started(1, 2, "Patient-1.ndjson", 3 * 1024 * 1024)
    progress.received(2 * 1024 * 1024)
    progress.file_done()
    progress.file_started(2, 2, "Observation-1.ndjson", None)
    progress.file_done()
    progress.close()

    drawn = screen.getvalue()
    assert "export running on the server, 12 s: Build in progress - 40%" in drawn
    assert "Patient-1.ndjson 2.0 of 3.0 MiB" in drawn
    assert "2/2" in drawn
