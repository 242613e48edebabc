"""Dense and Chain: forward pass against NumPy, shapes, errors, and gradients against
finite differences in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import finite_difference

import fluxjax as fx


def test_dense_forward_matches_numpy():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    d = fx.Dense(w, b, fx.tanh)
    x = rng.standard_normal((5, 2)).astype(np.float32)
    np.testing.assert_allclose(d(x), np.tanh(x @ w.T + b), rtol=1e-5)
    # one observation, and extra leading axes
    np.testing.assert_allclose(d(x[0]), np.tanh(w @ x[0] + b), rtol=1e-5)
    assert d(np.zeros((4, 5, 2), np.float32)).shape == (4, 5, 3)


def test_dense_constructors():
    d = fx.Dense(3, 2, fx.relu)
    assert d.weight.shape == (2, 3) and d.bias.shape == (2,) and d.weight.dtype == jnp.float32
    np.testing.assert_array_equal(d.bias, 0)
    assert fx.Dense(3, 2, bias=False).bias is None
    assert fx.Dense(3, 2, init=fx.ones32).weight.sum() == 6
    d = fx.Dense([[1.0, 2.0]], [0.5])
    np.testing.assert_allclose(d(np.array([1.0, 1.0], np.float32)), [3.5])


def test_dense_wrong_input_size_names_layer_and_shape():
    d = fx.Dense(1, 4, fx.sigmoid)
    with pytest.raises(ValueError, match=r"Dense\(1 => 4, sigmoid\).*1 features.*\(21, 2\)"):
        d(np.zeros((21, 2), np.float32))


def test_dense_bad_arguments():
    with pytest.raises(ValueError, match="bias must have shape"):
        fx.Dense(2, 3, bias=np.zeros(2))
    with pytest.raises(ValueError, match="positive"):
        fx.Dense(0, 3)
    with pytest.raises(ValueError, match=r"shape \(out, in\)"):
        fx.Dense(np.zeros(3))


def test_chain_composes_any_callables_and_slices_share_layers():
    contrast = lambda x: fx.sigmoid(20 * (x - 0.5))  # noqa: E731
    m = fx.Chain(contrast, fx.Dense(3, 4, fx.relu), fx.Dense(4, 2), fx.softmax)
    x = np.random.default_rng(1).random((6, 3)).astype(np.float32)
    expected = fx.softmax(m[2](m[1](contrast(x))))
    np.testing.assert_allclose(m(x), expected, rtol=1e-6)
    assert len(m) == 4 and m[1] is list(m)[1]
    sub = m[1:3]
    assert isinstance(sub, fx.Chain) and sub[0] is m[1]
    sub[0].weight = np.zeros((4, 3), np.float32)
    np.testing.assert_array_equal(m[1].weight, 0)  # the slice shares the layer objects
    with pytest.raises(TypeError, match="not callable"):
        fx.Chain(fx.Dense(1, 1), 3)


ACTS = [fx.sigmoid, fx.tanh, fx.relu, fx.softplus, fx.swish, fx.elu, fx.identity]


@pytest.mark.parametrize("act", ACTS, ids=lambda f: f.__name__)
def test_dense_gradient_matches_finite_differences(x64, act):
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal((3, 2)) + 0.1
    b0 = rng.standard_normal(3) + 0.1
    x = rng.standard_normal((4, 2))

    def f(w, b):
        return (fx.Dense(jnp.asarray(w), jnp.asarray(b), act)(jnp.asarray(x)) ** 2).sum()

    g = fx.gradient(
        lambda m: (m(jnp.asarray(x)) ** 2).sum(), fx.Dense(jnp.asarray(w0), jnp.asarray(b0), act)
    )[0]
    assert g.weight.dtype == jnp.float64
    np.testing.assert_allclose(
        g.weight, finite_difference(lambda w: f(w, b0), w0), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        g.bias, finite_difference(lambda b: f(w0, b), b0), rtol=1e-5, atol=1e-7
    )


def test_chain_gradient_matches_finite_differences(x64):
    rng = np.random.default_rng(3)
    w1, w2 = rng.standard_normal((4, 1)), rng.standard_normal((1, 4))
    x = np.linspace(0, 1, 7).reshape(-1, 1)
    y = np.sin(x)

    def loss(w1):
        m = fx.Chain(fx.Dense(jnp.asarray(w1), True, fx.sigmoid), fx.Dense(jnp.asarray(w2)))
        return fx.mse(m(jnp.asarray(x)), jnp.asarray(y))

    m = fx.Chain(fx.Dense(jnp.asarray(w1), True, fx.sigmoid), fx.Dense(jnp.asarray(w2)))
    g = fx.gradient(lambda m: fx.mse(m(jnp.asarray(x)), jnp.asarray(y)), m)[0]
    np.testing.assert_allclose(g[0].weight, finite_difference(loss, w1), rtol=1e-6, atol=1e-9)
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(m)


@pytest.mark.parametrize("cin", [1, 3])
@pytest.mark.parametrize(
    "stride, dilation, pad", [(1, 1, 0), (2, 1, (1, 0, 0, 2)), (2, 2, 1), (3, 2, 2)]
)
def test_conv_gradients_match_lax_autodiff(x64, cin, stride, dilation, pad):
    # Conv's hand-written reverse rule (canonical-layout convolutions; a shifted sum forward
    # for one input channel) against JAX's own rule for lax.conv_general_dilated
    rng = np.random.default_rng(4)
    c = fx.f64(fx.Conv((3, 2), cin, 4, stride=stride, dilation=dilation, pad=pad))
    x = jnp.asarray(rng.standard_normal((2, 9, 8, cin)))
    w0 = jnp.asarray(rng.standard_normal(c.weight.shape))
    out = rng.standard_normal(c(x).shape)

    def ref(x, w):
        y = jax.lax.conv_general_dilated(
            x, jnp.flip(w, (0, 1)), c.stride, c.pad, rhs_dilation=c.dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )  # fmt: skip
        return jnp.sum(out * y)

    def ours(x, w):
        m = fx.Conv(w, stride=stride, dilation=dilation, pad=pad)
        return jnp.sum(out * m(x))

    np.testing.assert_allclose(ours(x, w0), ref(x, w0), rtol=1e-12)
    for a, b in zip(jax.grad(ours, (0, 1))(x, w0), jax.grad(ref, (0, 1))(x, w0)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_conv_forward_mode_takes_the_lax_path(x64):
    """The hand-written reverse rule has no forward mode: a bare jax.jvp says so, fx.hessian
    and jax.jvp inside fluxjax.mode.forward() take lax's convolution and JAX's rules (the
    Hessian checked against finite differences of the gradient); so does
    LOWERING.hand_rule = False everywhere."""
    from fluxjax import mode
    from fluxjax.layers import conv

    c = fx.f64(fx.Conv((2, 2), 2, 3, fx.tanh))
    x = jnp.asarray(np.random.default_rng(5).standard_normal((1, 4, 4, 2)))

    def f(x):
        return jnp.sum(jnp.sin(c(x)))

    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(f, (x,), (x,))
    with mode.forward():
        _, dy = jax.jvp(f, (x,), (x,))
    conv.LOWERING.hand_rule = False
    try:
        _, dy2 = jax.jvp(f, (x,), (x,))
    finally:
        conv.LOWERING.hand_rule = True
    assert float(dy) == float(dy2)
    h = fx.hessian(f, x)
    g = jax.grad(f)
    flat = x.reshape(-1)
    fd = [
        (g((flat + e).reshape(x.shape)) - g((flat - e).reshape(x.shape))).reshape(-1) / 2e-6
        for e in np.eye(flat.size) * 1e-6
    ]
    np.testing.assert_allclose(
        np.asarray(h).reshape(flat.size, flat.size), np.stack(fd, 1), atol=1e-6
    )
