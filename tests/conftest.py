"""Shared helpers for the test suite."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import fluxjax as fx


def seed_data() -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's 1-D fit: 21 points of f(x) = 0.2 sin(4πx) + 0.3 e^-x + 4x^6 - 3.5x^5."""
    x = np.arange(0, 1.0001, 0.05, dtype=np.float32).reshape(-1, 1)
    y = 0.2 * np.sin(4 * math.pi * x) + 0.3 * np.exp(-x) + 4 * x**6 - 3.5 * x**5
    return x, y.astype(np.float32)


def seed_model() -> fx.Chain:
    """The tutorial's model with its hand-set starting weights."""
    m = fx.Chain(fx.Dense(1, 4, fx.sigmoid), fx.Dense(4, 1))
    m[0].weight = [[5.0], [-5.0], [-5.0], [-5.0]]
    m[0].bias = [0.0, 0.0, 0.0, 0.0]
    m[1].weight = [[5.0, -2.0, 5.0, -5.0]]
    m[1].bias = [0.0]
    return m


def finite_difference(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of scalar f at float64 array x."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (float(f(x + e)) - float(f(x - e))) / (2 * h)
    return g


@pytest.fixture
def x64():
    """Run the test body with JAX's float64 mode on (and off again afterwards)."""
    with jax.enable_x64(True):
        yield


class Compiles:
    """Counts XLA compilations (JAX's own monitoring events) while it is active."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.count = 0
        self.names: list[str] = []  # what was compiled, for the failure messages

    def __call__(self, name: str, *args, **kwargs) -> None:
        if name == self.EVENT:
            self.count += 1
            self.names.append(kwargs.get("fun_name", "?"))


@pytest.fixture
def compiles():
    """``compiles.count``: how many XLA compilations the test body has caused so far."""
    counter = Compiles()
    jax.monitoring.register_event_duration_secs_listener(counter)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(counter)


@pytest.fixture(autouse=True)
def _x64_restored():
    """fx.f64 turns on JAX's x64 mode for the whole process (documented); a test that calls
    it must not leave later tests (and doctests' float32 reprs) in float64."""
    before = jax.config.jax_enable_x64
    yield
    if jax.config.jax_enable_x64 != before:
        jax.config.update("jax_enable_x64", before)
