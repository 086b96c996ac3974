"""Progress of a Bulk Data export on a terminal: a status line while the server works, then a
bar over the files as they download (click's progress bar). Only for a terminal: elsewhere the
exporter is given no progress at all."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

MIB = 1024 * 1024


class TerminalProgress:
    """Draws on ``stream`` (standard error), which the caller has checked is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bar: ProgressBar[str] | None = None
        self._left = 0
        self._name = ""
        self._size: int | None = None
        self._received = 0
        self._waited = False

    def waiting(self, progress: str | None, elapsed: float) -> None:
        line = f"export running on the server, {elapsed:.0f} s: {progress or 'no progress given'}"
        width = shutil.get_terminal_size().columns
        click.echo(f"\r{line[: width - 1]}\x1b[K", nl=False, file=self._stream)
        self._waited = True

    def file_started(self, index: int, total: int, name: str, size: int | None) -> None:
        if self._waited:
            click.echo("", file=self._stream)
            self._waited = False
        if self._bar is None:
            self._left = total - index + 1
            self._bar = click.progressbar(
                None,
                length=self._left,
                label="downloading",
                file=self._stream,
                show_pos=True,
                item_show_func=_shown,
            )
            self._bar.__enter__()
        self._name, self._size, self._received = name, size, 0
        self._bar.update(0, self._item())

    def received(self, size: int) -> None:
        self._received += size
        if self._bar is not None:
            self._bar.update(0, self._item())

    def file_done(self) -> None:
        if self._bar is not None:
            self._bar.update(1, self._item())
            self._left -= 1
            if self._left <= 0:
                self._bar.__exit__(None, None, None)
                self._bar = None

    def close(self) -> None:
        """End the line or bar in progress (the export finished or failed)."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        if self._waited:
            click.echo("", file=self._stream)
            self._waited = False

    def _item(self) -> str:
        of = f" of {self._size / MIB:.1f}" if self._size is not None else ""
        return f"{self._name} {self._received / MIB:.1f}{of} MiB"


def _shown(text: str | None) -> str | None:
    return text
