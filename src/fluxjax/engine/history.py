"""``TrainHistory``: what ``train`` returns (the per-step losses and the callbacks' metrics)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..callbacks import History


class TrainHistory:
    """What ``train`` returns: the loss of every step taken, read from the device only when
    asked, and every value callbacks put in ``ctx.metrics``. The same interface as
    ``fx.History`` (``losses``, ``steps``, ``epochs``, ``len``, ``best()``), plus
    ``h["name"]`` (the values of one series: ``"loss"`` or a metric), ``h.steps_of(name)``
    (the steps they were recorded at), ``h.keys()`` and ``h.to_pandas()``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Dense(jnp.array([[0.0]]), False)
    >>> x = jnp.ones((2, 1))
    >>> def halve(ctx):
    ...     ctx.metrics["w"] = float(m.weight[0, 0])
    >>> h = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, x), (x, x)],
    ...              fx.Descent(0.25), epochs=2, cb=fx.every(2, halve))
    >>> h.losses, h.epochs
    ([1.0, 0.25, 0.0625, 0.015625], [1, 1, 2, 2])
    >>> h["w"], h.steps_of("w")
    ([0.75, 0.9375], [2, 4])
    """

    def __init__(self) -> None:
        # (device losses, how many of them are real steps, epoch of each: an int or a
        # (first step's 0-based index in the run, steps per epoch) pair)
        self._raw: list[tuple[Any, int, Any]] = []
        self._hist: History | None = None
        self._series: dict[str, tuple[list[int], list[Any]]] = {}

    def _add(self, losses: Any, count: int, epoch: Any) -> None:
        self._raw.append((losses, count, epoch))
        self._hist = None

    def _record(self, step: int, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            steps, values = self._series.setdefault(name, ([], []))
            steps.append(step)
            values.append(value)

    def _materialise(self) -> History:
        if self._hist is None:
            h = History()
            for raw, count, epoch in self._raw:
                raw = np.asarray(raw)
                if raw.dtype == np.int32:  # a compiled call's status vector (program)
                    raw = raw.view(np.float32)
                values = raw.astype(np.float64).ravel()[:count].tolist()
                for i, v in enumerate(values):
                    h.losses.append(v)
                    h.steps.append(len(h.steps) + 1)
                    h.epochs.append(
                        epoch if isinstance(epoch, int) else (epoch[0] + i) // epoch[1] + 1
                    )
            self._hist = h
        return self._hist

    @property
    def losses(self) -> list[float]:
        return self._materialise().losses

    @property
    def steps(self) -> list[int]:
        return self._materialise().steps

    @property
    def epochs(self) -> list[int]:
        return self._materialise().epochs

    def best(self) -> float:
        """The lowest loss of the run."""
        return self._materialise().best()

    def keys(self) -> list[str]:
        """The series recorded: ``"loss"`` and every metric name, in first-seen order."""
        return ["loss", *self._series]

    def __getitem__(self, name: str) -> list[Any]:
        if name == "loss":
            return self.losses
        if name not in self._series:
            raise KeyError(
                f"TrainHistory has no series {name!r}; it has {', '.join(self.keys())}. A "
                "callback records one with ctx.metrics[name] = value."
            )
        return [_value(v) for v in self._series[name][1]]

    def steps_of(self, name: str) -> list[int]:
        """The steps (1-based, in this ``train`` call) at which series ``name`` was recorded."""
        if name == "loss":
            return self.steps
        self[name]  # the same error for an unknown name
        return list(self._series[name][0])

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` indexed by step, with the epoch, the loss and one column
        per metric (NaN where it was not recorded). Needs ``pandas``."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("TrainHistory.to_pandas() needs pandas: pip install pandas") from None
        frame = pd.DataFrame({"epoch": self.epochs, "loss": self.losses}, index=self.steps)
        for name in self._series:
            frame[name] = pd.Series(self[name], index=self.steps_of(name), dtype=float)
        frame.index.name = "step"
        return frame

    def __len__(self) -> int:
        return len(self._materialise())

    def __repr__(self) -> str:
        return "Train" + repr(self._materialise())


def _value(v: Any) -> Any:
    """A recorded metric as a Python number when it is a scalar (read lazily, here)."""
    if callable(v):
        v = v()
    if np.ndim(v) == 0 and not isinstance(v, str):
        try:
            return float(v)
        except (TypeError, ValueError):
            return v
    return v
