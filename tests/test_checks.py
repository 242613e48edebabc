"""checks.depends_on_inputs / check_loss_depends: the detection a compiled step calls once
per trace to warn about a loss that depends on no trained array."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import pytest

from fluxjax.checks import check_loss_depends, depends_on_inputs


def jaxpr(f, *args):
    return jax.make_jaxpr(f)(*args).jaxpr


W = jnp.ones(3)


@pytest.mark.parametrize(
    "f, want",
    [
        (lambda w: jnp.sum(w * 2.0), True),
        (lambda w: jnp.float32(1.0), False),
        (lambda w: jnp.sum(jnp.ones(3)) * 2.0, False),  # computed, but not from w
        (lambda w: jnp.sum(w) * 0.0, True),  # depends (a zero gradient is still a gradient)
        (lambda w: jax.jit(lambda a: jnp.sum(a))(w), True),  # through a nested call
        (lambda w: jax.lax.fori_loop(0, 3, lambda i, c: c + jnp.sum(w), 0.0), True),
    ],
)
def test_depends_on_inputs(f, want):
    assert depends_on_inputs(jaxpr(f, W)) is want


def test_a_nested_call_is_taken_whole():
    """A call whose output ignores its input still counts as depending (no false warning)."""
    assert depends_on_inputs(jaxpr(lambda w: jax.jit(lambda a: jnp.float32(1.0) + 0 * a[0])(w), W))


class Slot:
    def label(self):
        return "Dense.weight"


def test_check_loss_depends_warns_only_for_a_blind_loss():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_loss_depends(lambda v: (jnp.sum(v[0]), None), [W], [Slot()])
        check_loss_depends(lambda v: (jnp.float32(1.0), None), [], [])  # nothing trained
        check_loss_depends(lambda v: (None, None), [W], [Slot()])  # the real call will raise
    with pytest.warns(UserWarning, match=r"any of the 1 array\(s\) being trained \(Dense.weight"):
        check_loss_depends(lambda v: (jnp.float32(1.0), None), [W], [Slot()])


def test_check_loss_depends_puts_back_what_the_loss_appended():
    seen = ["before"]

    def loss(v):
        seen.append(v[0] > 0)  # as skip_when does: a traced condition
        return jnp.sum(v[0]), None

    check_loss_depends(loss, [W], [Slot()], seen)
    assert seen == ["before"]
