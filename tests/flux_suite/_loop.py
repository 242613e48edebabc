"""A compiled optimisation loop for the translated suites: Flux's tests run 10^4 to 10^5
plain Julia steps; here the same steps run inside one ``lax.fori_loop`` through the rule
protocol (``init``/``apply``, the engine's ``apply_one``), so each case costs one compile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from fluxjax.optimise.interface import apply_one


def optimise(
    rule: Any,
    xs: tuple[Any, ...],
    grads: Callable[[tuple[Any, ...], Any], tuple[Any, ...]],
    steps: int,
) -> tuple[Any, ...]:
    """Run ``steps`` updates ``x ← x − step`` of ``rule`` on the arrays ``xs``, each with the
    gradients ``grads(xs, i)`` (``i`` the 0-based step, e.g. to pick a batch from a pool of
    random ones: drawing fresh random numbers inside the loop costs most of its time);
    return the final arrays."""

    def body(i: Any, carry: Any) -> Any:
        xs, states = carry
        gs = grads(xs, i)
        out = [apply_one(rule, s, x, g, None) for s, x, g in zip(states, xs, gs)]
        return tuple(o[0] for o in out), tuple(o[1] for o in out)

    states = tuple(rule.init(x) for x in xs)
    run = jax.jit(lambda xs, states: jax.lax.fori_loop(0, steps, body, (xs, states)))
    return run(xs, states)[0]
