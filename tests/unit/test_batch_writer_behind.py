"""The fast engine's output written on a thread of its own, one chunk behind the scoring: every chunk lands,
in order, and no error is lost."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from shared.batch.engine import _Behind


class SlowWriter:
    """Records which thread wrote each chunk, after a pause; fails on the chunk numbered `fail_on`."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.written: list[int] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on
        self.event = threading.Event()

    def write_table(self, table: pa.Table) -> None:
        self.event.wait(0.01)
        number = table.column("n")[0].as_py()
        if number == self.fail_on:
            raise OSError("disk full")
        self.written.append(number)
        self.threads.add(threading.current_thread().name)


def _chunk(number: int) -> pa.Table:
    return pa.table({"n": [number] * 3})


def _write(writer: SlowWriter, chunks: int, then_fail: bool = False) -> None:
    """Chunks 0 to chunks - 1 through `_Behind`, then (with `then_fail`) an error in the scoring."""
    with _Behind(writer) as output:  # type: ignore[arg-type]
        for number in range(chunks):
            output.write_table(_chunk(number))
        if then_fail:
            raise ValueError("bad chunk")


def test_chunks_are_written_in_order_on_another_thread() -> None:
    """Every chunk is written, in the order given, by the writer's own thread, all done on leaving."""
    writer = SlowWriter()
    _write(writer, 20)
    assert writer.written == list(range(20))
    assert writer.threads and threading.current_thread().name not in writer.threads


def test_a_failed_write_is_raised() -> None:
    """A write that fails raises its error in the scoring thread (at the next write or on leaving), and no
    later chunk is written after it."""
    writer = SlowWriter(fail_on=3)
    with pytest.raises(OSError, match="disk full"):
        _write(writer, 10)
    assert writer.written == [0, 1, 2]
    with pytest.raises(OSError, match="disk full"):
        _write(SlowWriter(fail_on=0), 1)  # the last chunk's error, raised on leaving


def test_an_error_in_the_scoring_is_the_one_raised() -> None:
    """When the scoring fails while a write is in flight, the scoring's error is raised, not the write's."""
    writer = SlowWriter(fail_on=1)
    with pytest.raises(ValueError, match="bad chunk"):
        _write(writer, 2, then_fail=True)
    assert writer.written == [0]
