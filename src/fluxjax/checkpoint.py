"""``Checkpointer``: save model, optimiser and DataLoader every N global steps (or seconds),
keep the newest and the best, save on SIGTERM/SIGINT, write in the background; resume.

>>> import numpy as np, fluxjax as fx, tempfile
>>> folder = tempfile.mkdtemp()
>>> m = fx.Dense(1, 1)
>>> x = np.ones((4, 1), np.float32)
>>> ps, opt = fx.params(m), fx.Adam()
>>> ck = fx.Checkpointer(folder, m, opt, every=2)
>>> ck.resume() is None                     # a fresh folder: nothing to resume
True
>>> _ = fx.train(lambda x, y: fx.mse(m(x), y), ps, [(x, x)] * 5, opt, cb=ck, steps_per_call=1)
>>> ck.step, [os.path.basename(p) for p in ck.files()]
(5, ['checkpoint-00000002.safetensors', 'checkpoint-00000004.safetensors'])
>>> m2, opt2 = fx.Dense(1, 1), fx.Adam()
>>> fx.Checkpointer(folder, m2, opt2, every=2).resume()["step"]
4
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _ckpt, _files
from .callbacks import Scheduled, StepContext
from .counts import count
from .data import DataLoader
from .io import CheckpointError, load, snapshot

__all__ = ["Checkpointer", "Preempted"]


class Preempted(Exception):  # noqa: N818  (Flux-style name, as fx.stop)
    """Raised out of ``fx.train`` by a ``Checkpointer(on_signal=True)`` after the process
    got SIGTERM or SIGINT: the checkpoint of the last completed step was written first.
    ``path`` names it, ``step`` is its global step, ``signal`` the signal's name.

    >>> import fluxjax as fx
    >>> e = fx.Preempted("run/checkpoint-00000007.safetensors", 7, "SIGTERM")
    >>> e.step, str(e).split(":")[0]
    (7, 'train stopped by SIGTERM after global step 7')
    """

    def __init__(self, path: str, step: int, signal: str) -> None:
        self.path, self.step, self.signal = path, step, signal
        super().__init__(
            f"train stopped by {signal} after global step {step}: the checkpoint {path} holds "
            "that step. Resume with ck.resume() in the next run."
        )


def _positive(v: Any, name: str, allow_none: bool = False) -> int | None:
    if v is None and allow_none:
        return None
    return count(v, f"Checkpointer: {name} must be a positive int, got {v!r}.")


def _seconds(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | np.number) or not v > 0:
        raise ValueError(
            f"Checkpointer: every_seconds must be a positive number of seconds, got {v!r}; "
            "e.g. every_seconds=600 for every ten minutes."
        )
    return float(v)


class Checkpointer(Scheduled):
    """A scheduled callback (it fuses like ``fx.every``) that saves ``model``, ``opt``
    (rule or ``fx.setup`` state), ``loader`` (position and random state) and the global step
    to ``folder/checkpoint-<step>.safetensors``. The global step continues across ``train``
    calls and across resumes.

    * ``every=N``: after every ``N`` global steps; ``every_seconds=T``: at the first step
      boundary ``T`` seconds after the last save (the steps between run fused). Either or
      both; with neither, ``every=1000``.
    * ``keep=3``: always keep the newest ``keep`` files (``None``: all), for resuming.
    * ``best=2, monitor="val_loss", mode="min"``: also keep the ``best`` files by
      ``ctx.metrics[monitor]`` (put there by ``fx.metrics`` earlier in ``cb``, on the same
      schedule); ``Checkpointer.best(folder)`` names the best file.
    * ``on_signal=True``: on SIGTERM or SIGINT during ``train``, save at the next step
      boundary and raise ``fx.Preempted`` (naming the file) out of ``train``.
    * ``background=True``: the arrays are copied to the host at the step boundary and the
      file is written on a background thread while training goes on (one write at a time;
      ``ck.wait()`` waits for it, and a failed write raises at the next save or ``wait``;
      the interpreter finishes a write before it exits). Writes are atomic either way.
    * ``ck.resume()``: load the newest complete checkpoint (a file that fails its checks is
      skipped with a warning); returns its info (``step``, ``path``, extras) or ``None``.
    * ``ck.save(**extra)``: save now and wait for it; ``ck.wait()``: wait for a background
      write; ``track={"es": es}``: objects with ``state()``/``loadstate()`` saved and
      restored with each checkpoint (``fx.early_stopping``, ``fx.plateau`` ...).
    * ``Checkpointer.latest(folder)``: the newest complete checkpoint file, or ``None``.

    ``N`` steps + save + kill + resume + ``M`` steps gives bit-identical parameters to
    ``N + M`` uninterrupted steps of the same program on CPU (docs/reliability.md).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        model: Any,
        opt: Any = None,
        *,
        loader: DataLoader | None = None,
        every: int | None = None,
        every_seconds: float | None = None,
        keep: int | None = 3,
        best: int | None = None,
        monitor: str | None = None,
        mode: str = "min",
        on_signal: bool = False,
        background: bool = True,
        prefix: str = "checkpoint",
        track: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_seconds = _seconds(every_seconds)
        if every is None and self.every_seconds is None:
            every = 1000
        self.every = _positive(every, "every", allow_none=True)
        self.keep = _positive(keep, "keep", allow_none=True)
        self._check_best(best, monitor, mode)
        self.best_k = _positive(best, "best", True) or (1 if monitor is not None else None)
        self.monitor, self.mode = monitor, mode
        if not isinstance(prefix, str) or not prefix or "/" in prefix:
            raise ValueError(f"Checkpointer: prefix must be a file-name stem, got {prefix!r}.")
        for name, flag in (("on_signal", on_signal), ("background", background)):
            if not isinstance(flag, bool):
                raise TypeError(f"Checkpointer: {name} must be True or False, got {flag!r}.")
        self.folder, self.prefix = os.fspath(folder), prefix
        os.makedirs(self.folder, exist_ok=True)
        self.model, self.opt, self.loader = model, opt, loader
        self.track = dict(track or {})
        for name, obj in self.track.items():
            if not (
                callable(getattr(obj, "state", None)) and callable(getattr(obj, "loadstate", None))
            ):
                raise TypeError(
                    f"Checkpointer: track[{name!r}] = {obj!r} has no state()/loadstate(); "
                    "track takes objects such as fx.early_stopping(...) or fx.plateau(...)."
                )
        self.background, self._clock = background, clock
        self._signals = _ckpt.Signals() if on_signal else None
        self._writer = _ckpt.Writer(self.folder)
        self._scores: dict[str, float | None] = {}
        self.step = 0  # the global step: updates made, across train calls and resumes
        self._base, self._seen, self._saved = 0, 0, 0
        self._last_time = clock()
        self._mark = (0, self._last_time)  # (step, clock) of the last steps_until

    @staticmethod
    def _check_best(best: Any, monitor: Any, mode: Any) -> None:
        if mode not in ("min", "max"):
            raise ValueError(
                f"Checkpointer: mode must be 'min' (a loss: lower is better) or 'max' (an "
                f"accuracy), got {mode!r}."
            )
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(
                f"Checkpointer: monitor is the name of a metric in ctx.metrics, e.g. "
                f"monitor='val_loss', got {monitor!r}."
            )
        if best is not None and monitor is None:
            raise TypeError(
                f"Checkpointer: best={best!r} needs monitor=, the name of the metric that "
                "ranks the checkpoints, e.g. best=2, monitor='val_loss' with "
                "fx.metrics(every=N, val_loss=...) before the Checkpointer in cb."
            )

    # -- the Scheduled protocol ------------------------------------------------------------
    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        now = self._clock()
        if step == 0:
            self._start_call()
            self._mark = (0, now)
            if self._signals is not None:
                self._signals.install()
        own = (now - self._mark[1]) / max(1, step - self._mark[0]) if step else 0.0
        self._mark = (step, now)
        sps = max(own, seconds_per_step or 0.0)
        if self._signals is not None and self._signals.received is not None:
            return 1
        k = math.inf if self.every is None else self.every - (self._base + step) % self.every
        if self.every_seconds is not None:
            left = self.every_seconds - (now - self._last_time)
            if left <= 0:
                k = 1
            elif sps > 0:
                k = min(k, max(1, int(left / sps)))
            elif self.every is None:  # the step time is not known yet: measure it
                k = 1
        if self._signals is not None and sps > 0:  # answer a signal within about a second
            k = min(k, max(1, int(1.0 / sps)))
        return int(k) if k != math.inf else 1 << 30

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step <= self._seen:  # a new train call began without steps_until(0)
            self._start_call()
        self._seen = ctx.step
        self.step = self._base + ctx.step
        if self._signals is not None and self._signals.received is not None:
            self._preempt()
        by_step = self.every is not None and self.step // self.every > self._saved // self.every
        by_time = (
            self.every_seconds is not None and self._clock() - self._last_time >= self.every_seconds
        )
        if by_step or by_time:
            self._save(self._score(ctx, required=by_step), self.background, {})

    def finish(self, steps: int | None = None) -> None:
        """End of a ``train`` call that ran ``steps`` steps (default: ``steps_taken``, which
        ``train`` sets): restores the signal handlers, and raises ``fx.Preempted`` after
        saving if a signal came after the last boundary. A background write goes on (the
        next save, ``resume`` or ``wait`` joins it)."""
        steps = self.steps_taken if steps is None else steps
        self.step = self._base + (self._seen if steps is None else int(steps))
        self._start_call()
        if self._signals is not None:
            self._signals.restore()
            if self._signals.received is not None:
                self._preempt()

    def _start_call(self) -> None:
        self._base, self._seen = self.step, 0

    def _preempt(self) -> None:
        signum = self._signals.received
        self._signals.received = None
        path = self._save(None, False, {})
        raise Preempted(path, self.step, _ckpt.Signals.name(signum))

    def _score(self, ctx: StepContext, required: bool) -> float | None:
        if self.monitor is None:
            return None
        if self.monitor not in ctx.metrics:
            if not required:
                return None
            raise ValueError(
                f"Checkpointer: monitor={self.monitor!r} is not in ctx.metrics at global step "
                f"{self.step} (it holds {sorted(ctx.metrics) or 'nothing'}). Put "
                f"fx.metrics(every={self.every}, {self.monitor}=...) before the Checkpointer "
                "in cb, on the same schedule."
            )
        return float(ctx.metrics[self.monitor])

    # -- files -------------------------------------------------------------------------------
    def path(self, step: int) -> str:
        """The file name of the checkpoint at global ``step``."""
        return os.path.join(self.folder, f"{self.prefix}-{step:08d}.safetensors")

    def save(self, **extra: Any) -> str:
        """Save a checkpoint at the current global step now and wait until it is written;
        returns its path. ``extra[monitor]``, if given, is its score for ``best``."""
        score = extra.get(self.monitor) if self.monitor is not None else None
        return self._save(None if score is None else float(score), False, extra)

    def _save(self, score: float | None, background: bool, extra: dict[str, Any]) -> str:
        self._writer.wait()  # one write at a time, in order
        path = self.path(self.step)
        if self.track:
            extra["tracked"] = {k: obj.state() for k, obj in self.track.items()}
        if score is not None:
            extra["score"] = {"monitor": self.monitor, "mode": self.mode, "value": score}
        tensors, meta = snapshot(self.model, self.opt, loader=self.loader, step=self.step, **extra)
        self._saved, self._last_time = self.step, self._clock()
        self._scores[path] = score

        def job() -> None:
            _files.write(path, tensors, meta)
            self._prune()

        if background:
            self._writer.submit(job)
        else:
            job()
        return path

    def wait(self) -> None:
        """Wait for a background write to finish (raising the error it met, if any)."""
        self._writer.wait()

    def files(self) -> list[str]:
        """This checkpointer's files in ``folder``, oldest first (by step), once a background
        write in progress has finished."""
        self._writer.wait()
        return [p for _, p in _ckpt.files_in(self.folder, self.prefix)]

    def _prune(self) -> None:
        if self.keep is None:
            return
        found = _ckpt.files_in(self.folder, self.prefix)
        if self.best_k:
            for _, p in found:
                if p not in self._scores:
                    s = _ckpt.score_of(p)
                    self._scores[p] = s["value"] if s and s["monitor"] == self.monitor else None
        keep = _ckpt.retained(found, self._scores, self.keep, self.best_k, self.mode)
        for _, p in found:
            if p not in keep:
                try:
                    os.remove(p)
                except FileNotFoundError:  # pragma: no cover - removed by someone else
                    pass

    def resume(self) -> dict[str, Any] | None:
        """Load the newest complete checkpoint (skipping, with a warning, any that fails its
        checks); returns its info with ``path`` added, or ``None`` if there is none."""
        self._writer.wait()
        _ckpt.settle(self.folder)  # another Checkpointer of this process may still write here
        _ckpt.remove_temporaries(self.folder, self.prefix)
        for p in reversed(self.files()):
            try:
                info = load(p, self.model, self.opt, loader=self.loader)
            except CheckpointError as e:
                if "saved from another model" in str(e) or "does not fit" in str(e):
                    raise
                warnings.warn(f"Checkpointer.resume: skipping {p}: {e}", UserWarning, 2)
                continue
            for k, obj in self.track.items():
                if k in info.get("tracked", {}):
                    obj.loadstate(info["tracked"][k])
            self.step = self._saved = int(info["step"] or 0)
            self._last_time = self._clock()
            self._start_call()
            return {**info, "path": p}
        return None

    @staticmethod
    def latest(folder: str | os.PathLike[str], prefix: str = "checkpoint") -> str | None:
        """The newest checkpoint file in ``folder`` whose header and size are complete.

        >>> import fluxjax as fx, tempfile
        >>> fx.Checkpointer.latest(tempfile.mkdtemp()) is None
        True
        """
        _ckpt.settle(os.fspath(folder))  # a background write of this process: finished first
        for _, p in reversed(_ckpt.files_in(os.fspath(folder), prefix)):
            try:
                _files.read_header(p)
            except (CheckpointError, OSError):
                continue
            return p
        return None

    @staticmethod
    def best(folder: str | os.PathLike[str], prefix: str = "checkpoint") -> str | None:
        """The complete checkpoint file in ``folder`` with the best score (by the ``monitor``
        and ``mode`` saved in it; of equal scores the newest), or ``None`` if no file has one.

        >>> import fluxjax as fx, tempfile
        >>> folder, m = tempfile.mkdtemp(), fx.Dense(1, 1)
        >>> ck = fx.Checkpointer(folder, m, monitor="val_loss", keep=None)
        >>> for step, v in [(1, 0.5), (2, 0.2), (3, 0.4)]:
        ...     ck.step = step; _ = ck.save(val_loss=v)
        >>> os.path.basename(fx.Checkpointer.best(folder))
        'checkpoint-00000002.safetensors'
        """
        files = _ckpt.files_in(os.fspath(folder), prefix)
        found = {p: _ckpt.score_of(p) for _, p in files}
        scored = {p: s["value"] for p, s in found.items() if s}
        if not scored:
            return None
        mode = next(s["mode"] for s in found.values() if s)
        best = _ckpt.retained([f for f in files if f[1] in scored], scored, 0, 1, mode)
        return best.pop()

    @property
    def saved(self) -> int:
        """The global step of the last checkpoint this Checkpointer wrote (0 if none)."""
        return self._saved

    def __repr__(self) -> str:
        when = f"every={self.every}" + (
            f", every_seconds={self.every_seconds}" if self.every_seconds else ""
        )
        best = f", best={self.best_k}, monitor={self.monitor!r}" if self.best_k else ""
        return f"Checkpointer({self.folder!r}, {when}, keep={self.keep}{best}, step={self.step})"
