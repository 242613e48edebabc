"""The Checkpointer's machinery (internal): its files in a folder, which of them to keep,
the background writer, and the signal catcher for preemption.

>>> sorted(retained([(1, "a"), (2, "b"), (3, "c"), (4, "d")], {"a": 0.1, "b": 0.5}, 1, 1, "min"))
['a', 'd']
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from . import _files
from ._files import CheckpointError

_NAME = re.compile(r"^(?P<prefix>.+)-(?P<step>\d+)\.safetensors$")


def files_in(folder: str, prefix: str) -> list[tuple[int, str]]:
    """``(step, path)`` of the checkpoint files named ``prefix-<step>.safetensors``, by step."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = []
    for n in names:
        m = _NAME.match(n)
        if m and m["prefix"] == prefix:
            found.append((int(m["step"]), os.path.join(folder, n)))
    return sorted(found)


def remove_temporaries(folder: str, prefix: str) -> None:
    """Delete temporary files a killed save left behind (they never replaced a checkpoint)."""
    for n in os.listdir(folder):
        if n.startswith(f".{prefix}-") and n.endswith(".tmp"):
            try:
                os.remove(os.path.join(folder, n))
            except OSError:  # pragma: no cover
                pass


def score_of(path: str) -> dict[str, Any] | None:
    """The ``{"monitor", "mode", "value"}`` a Checkpointer stored in a file (None: none, or
    the file is incomplete)."""
    try:
        header, _ = _files.read_header(path)
        meta = _files._meta(path, header)
    except (CheckpointError, OSError):
        return None
    s = meta.get("extra", {}).get("score")
    return s if isinstance(s, dict) and isinstance(s.get("value"), int | float) else None


def retained(
    files: list[tuple[int, str]],
    scores: dict[str, float | None],
    keep: int | None,
    best: int | None,
    mode: str,
) -> set[str]:
    """The paths to keep: the newest ``keep`` (all when None) and the ``best`` by score
    (lowest for ``mode="min"``; of two equal scores the newer)."""
    paths = [p for _, p in files]
    out = set(paths if keep is None else paths[max(0, len(paths) - keep) :])
    if best:
        sign = 1.0 if mode == "min" else -1.0
        ranked = sorted(
            ((sign * v, -step, p) for step, p in files if (v := scores.get(p)) is not None),
        )
        out.update(p for _, _, p in ranked[:best])
    return out


class Writer:
    """Runs one write at a time on a background thread; ``wait()`` joins it and raises the
    error it met, if any. The thread is not a daemon: the interpreter finishes a write in
    progress before it exits. Every writer of a folder is known to ``settle(folder)``."""

    def __init__(self, folder: str = "") -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        WRITERS.setdefault(os.path.abspath(folder), weakref.WeakSet()).add(self)

    def submit(self, job: Callable[[], None]) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(job,), name="fluxjax-checkpoint")
        self._thread.start()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as e:  # noqa: BLE001 - raised on the training thread by wait()
            self._error = e
            atexit.register(self._report)

    def _report(self) -> None:
        """At exit: a failed write nobody waited for is not lost silently."""
        if self._error is not None:
            print(
                f"fluxjax: a background checkpoint write failed: {self._error!r}", file=sys.stderr
            )

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            e, self._error = self._error, None
            raise e


WRITERS: dict[str, weakref.WeakSet[Writer]] = {}  # folder -> the writers writing into it


def settle(folder: str) -> None:
    """Wait for every background write into ``folder`` in this process (another
    Checkpointer's too), so that what is read there next is complete. A writer's error stays
    with its own Checkpointer, raised at its next save, ``wait()`` or ``files()``."""
    for w in list(WRITERS.get(os.path.abspath(folder), ())):
        thread = w._thread
        if thread is not None:
            thread.join()


class Signals:
    """While installed, SIGTERM and SIGINT only set ``received`` (the signal's number); a
    second one restores the previous handlers and delivers itself again (a second Ctrl-C
    interrupts at once)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if self._old:
            return
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "Checkpointer(on_signal=True): Python delivers signals to the main thread "
                "only, and this train call runs on another; call train from the main thread, "
                "or pass on_signal=False."
            )
        for s in self.SIGNALS:
            self._old[s] = signal.signal(s, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
            return
        self.restore()
        signal.raise_signal(signum)

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    @staticmethod
    def name(signum: int) -> str:
        return signal.Signals(signum).name
