"""Loggers: ``CSVLogger`` and ``TensorBoardLogger``, scheduled callbacks that keep what a
run did in files a user can open later (a spreadsheet, pandas, TensorBoard).

Both are ``fx.Scheduled`` callbacks, so the steps between two logged ones run fused. Each
logged step gives one record: ``run`` (1-based count of the ``train`` calls this logger has
seen), ``step`` (the step within that call, ``ctx.step``), ``global_step`` (steps across the
logger's calls, see below), ``epoch``, ``loss``, ``eta`` (the learning rate, empty when the
rule has none), ``wall_time`` (Unix time, seconds) and every entry of ``ctx.metrics`` (put
there by ``fx.metrics`` or any earlier callback in the list).

**When.** A row is written after steps ``every, 2·every, ...`` of each ``train`` call (as
``fx.every``). **Global step across calls.** ``global_step`` counts the steps of every
``train`` call the logger was given (``train`` tells it how many a call took), so the same
logger passed to ``train`` once per epoch continues its curve; an appended CSV continues
from its last row. **Flushing.** ``finish()``, which ``train`` calls when it ends (normally, by
``fx.stop()`` or by an exception), flushes the file; rows are also flushed at least once a
second while training, so a killed process loses at most that.

>>> import jax.numpy as jnp, fluxjax as fx, tempfile
>>> from pathlib import Path
>>> m = fx.Dense(jnp.array([[0.0]]), False)
>>> x = jnp.ones((2, 1))
>>> path = Path(tempfile.mkdtemp()) / "log.csv"
>>> _ = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, x)] * 4, fx.Descent(0.25),
...              cb=fx.CSVLogger(path, every=2))
>>> lines = path.read_text().splitlines()
>>> lines[0]
'run,step,global_step,epoch,loss,eta,wall_time'
>>> [line.split(",")[:5] for line in lines[1:]]
[['1', '2', '2', '1', '0.25'], ['1', '4', '4', '1', '0.015625']]
"""

from __future__ import annotations

import csv
import math
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .callbacks import Scheduled, StepContext
from .counts import count

__all__ = ["CSVLogger", "TensorBoardLogger"]

FIXED = ["run", "step", "global_step", "epoch", "loss", "eta", "wall_time"]


def _every(owner: str, every: Any) -> int:
    return count(every, f"{owner}: every must be a positive int (steps), got {every!r}.")


def scalar(value: Any) -> float | None:
    """A logged value as a float: device scalars and zero-argument functions (lazy values)
    are read here; ``None`` stays ``None``."""
    if callable(value):
        value = value()
    return None if value is None else float(value)


class _Logger(Scheduled):
    """What both loggers share: the schedule, run and global-step counting, the record."""

    def __init__(self, every: int) -> None:
        self.every = _every(type(self).__name__, every)
        self.run, self._offset = 0, 0  # train calls finished, and the steps they took

    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        return self.every - step % self.every

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step % self.every:  # called off its schedule (by hand): log only on it
            return
        self.write(self._record(ctx))

    def _record(self, ctx: StepContext) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "run": self.run + 1,
            "step": ctx.step,
            "global_step": self._offset + ctx.step,
            "epoch": ctx.epoch,
            "loss": ctx.loss,
            "eta": scalar(ctx.eta),
            "wall_time": time.time(),
        }
        for name, value in ctx.metrics.items():
            rec[str(name)] = scalar(value)
        return rec

    def finish(self) -> None:
        """End of a ``train`` call (``train`` has set ``steps_taken``): flush; the next call
        is a new run whose steps count on from this one's."""
        self.run += 1
        self._offset += self.steps_taken
        self.flush()

    def write(self, rec: dict[str, Any]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError


class CSVLogger(_Logger):
    """``CSVLogger(path, every=1)``: one CSV row per logged step (Keras's ``CSVLogger``):
    ``run, step, global_step, epoch, loss, eta, wall_time`` and then one column per metric.

    The header comes first. An existing file is appended to (a second run continues it;
    ``run`` and ``global_step`` continue from the file's last row). When a row brings a
    column the file does not have yet (a new metric, in this run or a later one), the file
    is rewritten once with the wider header, earlier rows getting empty cells there: a
    column never silently shifts. Empty cells mean "not logged at this step" (a metric on
    a sparser schedule, ``eta`` of a rule without one). The file is written to a temporary
    name and renamed when rewritten, so a crash mid-rewrite keeps the old file.

    >>> import fluxjax as fx, tempfile, os
    >>> fx.CSVLogger(os.path.join(tempfile.mkdtemp(), "log.csv"), every=10)
    CSVLogger('...log.csv', every=10)
    """

    def __init__(self, path: str | os.PathLike[str], every: int = 1) -> None:
        super().__init__(every)
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"CSVLogger: path must be a file name, got {path!r}.")
        self.path = Path(path)
        self._file: Any = None
        self._columns: list[str] = []
        self._flushed = 0.0
        self._resume()

    def _resume(self) -> None:
        """Continue an existing file: its columns, its last run and global step."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            self._columns = list(reader.fieldnames or [])
            last = None
            for row in reader:
                last = row
        missing = [c for c in FIXED if c not in self._columns]
        if missing:
            raise ValueError(
                f"CSVLogger: {str(self.path)!r} exists but is not a fluxjax log (no column "
                f"{missing[0]!r}); pass a new path or delete the file."
            )
        if last is not None:
            self.run, self._offset = int(last["run"]), int(last["global_step"])

    def write(self, rec: dict[str, Any]) -> None:
        new = [k for k in rec if k not in self._columns]
        if new:
            self._widen(new)
        if self._file is None:
            self._file = self.path.open("a", newline="")
        row = [_cell(rec.get(c)) for c in self._columns]
        csv.writer(self._file).writerow(row)
        now = time.monotonic()
        if now - self._flushed > 1.0:
            self._file.flush()
            self._flushed = now

    def _widen(self, new: list[str]) -> None:
        """Add columns: rewrite the file (header and earlier rows) with the new header."""
        self.flush()
        old_rows: list[dict[str, str]] = []
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open(newline="") as f:
                old_rows = list(csv.DictReader(f))
        fixed = [c for c in FIXED if c not in self._columns]
        self._columns = self._columns + fixed + [c for c in new if c not in FIXED]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, self._columns, restval="")
            w.writeheader()
            w.writerows(old_rows)
        os.replace(tmp, self.path)

    def flush(self) -> None:
        """Write buffered rows to disk and close the file (reopened at the next row)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __repr__(self) -> str:
        return f"CSVLogger({str(self.path)!r}, every={self.every})"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


class TensorBoardLogger(_Logger):
    """``TensorBoardLogger(logdir, every=10)``: the loss, the learning rate (``eta``) and
    every metric as TensorBoard scalars at ``global_step`` (``tensorboard --logdir
    LOGDIR``), as ``tensorboardX`` encodes them (``pip install 'fluxjax[tb]'``). Flux's
    counterpart is TensorBoardLogger.jl.

    Events are written synchronously (no background thread). One event file per logger:
    ``finish()`` (the end of each ``train`` call) flushes and closes it, and the next call
    appends to the same file, so a logger passed to ``train`` once per epoch leaves one
    file, and nothing stays open between calls.

    >>> import fluxjax as fx, tempfile
    >>> fx.TensorBoardLogger(tempfile.mkdtemp(), every=5).every
    5
    """

    def __init__(self, logdir: str | os.PathLike[str], every: int = 10) -> None:
        super().__init__(every)
        if not isinstance(logdir, str | os.PathLike):
            raise TypeError(f"TensorBoardLogger: logdir must be a folder name, got {logdir!r}.")
        self.logdir = Path(logdir)
        self._tb = _tensorboardx()
        self.path: Path | None = None  # the event file, once the first row is written
        self._file: Any = None
        self._flushed = 0.0

    def _open(self) -> Any:
        event_class, _, _ = self._tb
        if self.path is None:
            self.logdir.mkdir(parents=True, exist_ok=True)
            _FILES[0] += 1
            name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
            self.path = self.logdir / f"{name}.{os.getpid()}.{_FILES[0]}"
            self._file = self.path.open("ab")
            self._event(event_class(wall_time=time.time(), file_version="brain.Event:2"))
        else:
            self._file = self.path.open("ab")
        return self._file

    def _event(self, event: Any) -> None:
        """One record of the event file (TFRecord framing, as tensorboardX writes it)."""
        _, crc, _ = self._tb
        data = event.SerializeToString()
        header = struct.pack("Q", len(data))
        self._file.write(header + struct.pack("I", crc(header)))
        self._file.write(data + struct.pack("I", crc(data)))

    def write(self, rec: dict[str, Any]) -> None:
        event_class, _, scalar_summary = self._tb
        if self._file is None:
            self._open()
        step, wall = rec["global_step"], rec["wall_time"]
        for name, value in rec.items():
            if name not in FIXED[:4] and name != "wall_time" and value is not None:
                self._event(
                    event_class(wall_time=wall, step=step, summary=scalar_summary(name, value))
                )
        now = time.monotonic()
        if now - self._flushed > 1.0:
            self._file.flush()
            self._flushed = now

    def flush(self) -> None:
        """Write the logged events to disk and close the file (reopened at the next row)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    close = flush

    def __repr__(self) -> str:
        return f"TensorBoardLogger({str(self.logdir)!r}, every={self.every})"


_FILES = [0]


def _tensorboardx() -> tuple[Any, Callable[[bytes], int], Callable[..., Any]]:
    """tensorboardX's Event proto, its record checksum and its scalar summary."""
    try:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.record_writer import masked_crc32c
        from tensorboardX.summary import scalar
    except ImportError as e:
        raise ImportError(
            "fx.TensorBoardLogger needs tensorboardX: pip install 'fluxjax[tb]' "
            "(or pip install tensorboardX)."
        ) from e
    return Event, masked_crc32c, scalar
