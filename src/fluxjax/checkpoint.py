"""``Checkpointer``: save model, optimiser and DataLoader every N global steps; resume.

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

import os
import re
import warnings
from typing import Any

import numpy as np

from . import _files
from .callbacks import Scheduled, StepContext
from .data import DataLoader
from .io import CheckpointError, load, save

__all__ = ["Checkpointer"]

_NAME = re.compile(r"^(?P<prefix>.+)-(?P<step>\d+)\.safetensors$")


def _positive(v: Any, name: str, allow_none: bool = False) -> int | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ValueError(f"Checkpointer: {name} must be a positive int, got {v!r}.")
    return int(v)


class Checkpointer(Scheduled):
    """A scheduled callback (it fuses like ``fx.every``) that saves ``model``, ``opt``
    (rule or ``fx.setup`` state), ``loader`` (position and random state) and the global step
    to ``folder/checkpoint-<step>.safetensors`` after every ``every`` global steps, keeping
    the newest ``keep`` files (``keep=None`` keeps all). The global step continues across
    ``train`` calls and across resumes.

    * ``ck.resume()``: load the newest complete checkpoint in ``folder`` into the model,
      optimiser and loader; returns its info (``step``, ``path``, extras) or ``None`` when
      there is none. A file that fails its checks is skipped with a warning.
    * ``ck.save(**extra)``: save now (e.g. at the end); ``ck.step``: the global step.
    * ``track={"es": es}``: objects with ``state()``/``loadstate()`` saved and restored with
      each checkpoint, such as ``fx.early_stopping``/``fx.plateau``/``fx.patience`` triggers
      (their counter and best or last score).
    * ``Checkpointer.latest(folder)``: the newest complete checkpoint file, or ``None``.

    Writes are atomic, so a kill at any moment leaves every earlier checkpoint whole, and
    ``N`` steps + save + kill + resume + ``M`` steps gives bit-identical parameters to
    ``N + M`` uninterrupted steps on CPU (see docs/reliability.md for the recipe).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        model: Any,
        opt: Any = None,
        *,
        loader: DataLoader | None = None,
        every: int = 1000,
        keep: int | None = 3,
        prefix: str = "checkpoint",
        track: dict[str, Any] | None = None,
    ) -> None:
        self.every = _positive(every, "every")
        self.keep = _positive(keep, "keep", allow_none=True)
        if not isinstance(prefix, str) or not prefix or "/" in prefix:
            raise ValueError(f"Checkpointer: prefix must be a file-name stem, got {prefix!r}.")
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
        self.step = 0  # the global step: updates made, across train calls and resumes
        self._base, self._seen, self._saved = 0, 0, 0

    # -- the Scheduled protocol ------------------------------------------------------------
    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        if step == 0:
            self._start_call()
        return self.every - (self._base + step) % self.every

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step <= self._seen:  # a new train call began without steps_until(0)
            self._start_call()
        self._seen = ctx.step
        self.step = self._base + ctx.step
        if self.step // self.every > self._saved // self.every:
            self.save()

    def finish(self, steps: int | None = None) -> None:
        """End of a ``train`` call that ran ``steps`` steps (default: ``steps_taken``, which
        ``train`` sets; the last step seen if neither is known)."""
        steps = self.steps_taken if steps is None else steps
        self.step = self._base + (self._seen if steps is None else int(steps))
        self._start_call()

    def _start_call(self) -> None:
        self._base, self._seen = self.step, 0

    # -- files -------------------------------------------------------------------------------
    def path(self, step: int) -> str:
        """The file name of the checkpoint at global ``step``."""
        return os.path.join(self.folder, f"{self.prefix}-{step:08d}.safetensors")

    def save(self, **extra: Any) -> str:
        """Save a checkpoint at the current global step now; returns its path."""
        path = self.path(self.step)
        if self.track:
            extra["tracked"] = {k: obj.state() for k, obj in self.track.items()}
        save(path, self.model, self.opt, loader=self.loader, step=self.step, **extra)
        self._saved = self.step
        self._prune()
        return path

    def files(self) -> list[str]:
        """This checkpointer's files in ``folder``, oldest first (by step)."""
        return _files_in(self.folder, self.prefix)

    def _prune(self) -> None:
        if self.keep is None:
            return
        for p in self.files()[: -self.keep]:
            try:
                os.remove(p)
            except FileNotFoundError:  # pragma: no cover - removed by someone else
                pass

    def resume(self) -> dict[str, Any] | None:
        """Load the newest complete checkpoint (skipping, with a warning, any that fails its
        checks); returns its info with ``path`` added, or ``None`` if there is none."""
        _remove_temporaries(self.folder, self.prefix)
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
        for p in reversed(_files_in(os.fspath(folder), prefix)):
            try:
                _files.read_header(p)
            except (CheckpointError, OSError):
                continue
            return p
        return None

    @property
    def saved(self) -> int:
        """The global step of the last checkpoint this Checkpointer wrote (0 if none)."""
        return self._saved

    def __repr__(self) -> str:
        return (
            f"Checkpointer({self.folder!r}, every={self.every}, keep={self.keep}, step={self.step})"
        )


def _files_in(folder: str, prefix: str) -> list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = []
    for n in names:
        m = _NAME.match(n)
        if m and m["prefix"] == prefix:
            found.append((int(m["step"]), os.path.join(folder, n)))
    return [p for _, p in sorted(found)]


def _remove_temporaries(folder: str, prefix: str) -> None:
    """Delete temporary files a killed save left behind (they never replaced a checkpoint)."""
    for n in os.listdir(folder):
        if n.startswith(f".{prefix}-") and n.endswith(".tmp"):
            try:
                os.remove(os.path.join(folder, n))
            except OSError:  # pragma: no cover
                pass
