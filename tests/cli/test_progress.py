"""Progress output: a bar on a terminal, lines otherwise, never an error (issue 9: 11)."""

from __future__ import annotations

import io
import os

import pytest

from aihubmix_async._progress import Reporter, make_reporter, say


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class ClosedPipe(io.StringIO):
    """A stream whose reader went away (``... | head -1``)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.fd


def test_plain_lines_when_not_a_terminal() -> None:
    """Not a terminal: periodic plain lines with the total, then a final line."""
    stream = io.StringIO()
    reporter = make_reporter(3, stream)
    assert type(reporter) is Reporter
    reporter.interval = 0.0
    reporter.item(ok=True, images=2)
    reporter.item(ok=False)
    reporter.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[aihubmix] 1/3 saved, 0 failed")
    assert lines[-1].startswith("[aihubmix] 2/3 saved, 1 failed")


def test_a_bar_on_a_terminal() -> None:
    """A terminal gets a tqdm bar (the cli extra) counting saved items and failures."""
    pytest.importorskip("tqdm")
    stream = Terminal()
    reporter = make_reporter(2, stream)
    assert type(reporter) is not Reporter
    reporter.item(ok=True, images=1)
    reporter.note("a message between bar updates")
    reporter.item(ok=False)
    reporter.close()
    shown = stream.getvalue()
    assert "2/2" in shown
    assert "failed=1" in shown
    assert "a message between bar updates" in shown


@pytest.mark.parametrize("tty", [False, True])
def test_a_closed_stream_silences_the_reporter(tty: bool) -> None:
    """Finding 11: writes to a closed pipe never raise; the stream is pointed at /dev/null."""
    pytest.importorskip("tqdm")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        stream = ClosedPipe(write_end)
        if tty:
            stream.isatty = lambda: True  # type: ignore[method-assign]
        reporter = make_reporter(2, stream)
        reporter.interval = 0.0
        reporter.item(ok=True)
        reporter.note("lost")
        reporter.item(ok=True)
        reporter.close()
        assert reporter.broken
        assert reporter.done == 2
        os.write(write_end, b"no SIGPIPE, no EPIPE: /dev/null now\n")
    finally:
        os.close(write_end)


def test_say_on_a_closed_stream_returns_false() -> None:
    """say() reports a failed write instead of raising."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        assert say("gone", ClosedPipe(write_end)) is False
        assert say("kept", io.StringIO()) is True
    finally:
        os.close(write_end)


class DyingTerminal(Terminal):
    """A terminal that goes away after a few writes (the window was closed)."""

    def __init__(self, fd: int, writes: int) -> None:
        super().__init__()
        self.fd, self.left = fd, writes

    def write(self, text: str) -> int:
        self.left -= 1
        if self.left < 0:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)

    def fileno(self) -> int:
        return self.fd


def test_a_bar_whose_terminal_goes_away() -> None:
    """Finding 11: the bar stops drawing (no exception, also not when it is closed or
    collected) once its terminal is gone; the counts go on.
    """
    pytest.importorskip("tqdm")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        stream = DyingTerminal(write_end, writes=2)
        reporter = make_reporter(100, stream)
        for _ in range(70):
            reporter.item(ok=True)
        reporter.item(ok=False)
        reporter.note("lost")
        reporter.close()
        assert reporter.broken
        assert (reporter.done, reporter.failed) == (71, 1)
    finally:
        os.close(write_end)
