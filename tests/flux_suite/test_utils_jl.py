"""Flux v0.12's test/utils.jl, translated testset by testset.

``Random.seed!(0)`` becomes ``fx.seed(0)``. ``sleep(1.01)`` in the throttle testsets becomes a
fake clock (``throttle(..., clock=)``) moved by 1.01 s. ``@test_throws ArgumentError`` is
``ValueError``. Flux's ``Dense(10, 5)`` is fluxjax's ``Dense(10, 5)`` (weight ``(5, 10)`` in
both); inputs are rows.

Left out, as fluxjax does not have them (or they are Julia types): ``unsqueeze``,
``stack``/``unstack``/``batch``/``unbatch`` ("Basic Stacking", "Stacking", "Batching");
``Flux.Zeros`` ("Zeros", its gradient testsets); "Param remapping" (``loadparams!``,
``destructure``); "Train and test mode" (``testmode!``/``trainmode!`` on custom layers);
"modules" (``Flux.modules``); the RNN, Conv, ConvTranspose, CrossCor, Parallel and
LayerNorm cases (another engineer is adding those layers).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx

# -- "Throttle" ---------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_throttle_default_behaviour():
    a, clock = [], Clock()
    f = fx.throttle(lambda: a.append(clock()), 1, leading=True, trailing=False, clock=clock)
    f()
    f()
    f()
    clock.sleep(1.01)
    assert len(a) == 1


def test_throttle_leading_behaviour():
    a, clock = [], Clock()
    f = fx.throttle(lambda: a.append(clock()), 1, leading=True, trailing=False, clock=clock)
    f()
    assert len(a) == 1
    f()
    assert len(a) == 1
    clock.sleep(1.01)
    f()
    assert len(a) == 2


def test_throttle_trailing_behaviour():
    a, clock = [], Clock()
    f = fx.throttle(lambda: a.append(clock()), 1, leading=False, trailing=True, clock=clock)
    f()
    assert len(a) == 0
    f()
    assert len(a) == 0
    clock.sleep(1.01)
    # Flux's timer task runs the pending call by itself; fluxjax has no background thread:
    # the pending call runs at the next call or at flush() (README, differences).
    f.flush()
    assert len(a) == 1


def test_throttle_arguments():
    a, clock = [], Clock()
    f = fx.throttle(lambda x: a.append(x), 1, leading=True, trailing=True, clock=clock)
    f(1)
    assert a == [1]
    f(2)
    assert a == [1]
    f(3)
    assert a == [1]
    clock.sleep(1.01)
    f.flush()  # as above: Flux's timer would run it during the sleep
    assert a == [1, 3]


# -- "Initialization" ----------------------------------------------------------------------


def test_fan_in_out():
    assert fx.nfan() == (1, 1)  # for a constant
    assert fx.nfan(100) == (1, 100)  # for vector
    assert fx.nfan(100, 200) == (200, 100) == fx.nfan((100, 200))  # for Dense layer
    assert fx.nfan(2, 30, 40) == (2 * 30, 2 * 40)  # for 1D Conv layer
    assert fx.nfan(2, 3, 40, 50) == (2 * 3 * 40, 2 * 3 * 50)  # for 2D Conv layer
    assert fx.nfan(2, 3, 4, 50, 60) == (2 * 3 * 4 * 50, 2 * 3 * 4 * 60)  # for 3D Conv layer


def test_glorot():
    # glorot_uniform and glorot_normal should both yield a kernel with
    # variance ≈ 2/(fan_in + fan_out)
    fx.seed(0)  # one stream for the whole loop, as Random.seed!(0) in Flux's testset
    for dims in [(1000,), (100, 100), (100, 400), (2, 3, 32, 64), (2, 3, 4, 32, 64)]:
        for init in [fx.glorot_uniform, fx.glorot_normal]:
            v = init(*dims)
            fan_in, fan_out = fx.nfan(*dims)
            s2 = 2 / (fan_in + fan_out)
            assert 0.9 * s2 < float(jnp.var(v, ddof=1)) < 1.1 * s2
            assert v.dtype == jnp.float32


@pytest.mark.parametrize("n_in, n_out", [(100, 100), (100, 400)])
def test_kaiming(n_in, n_out):
    # kaiming_uniform should yield a kernel in range [-sqrt(6/n_out), sqrt(6/n_out)]
    # and kaiming_normal should yield a kernel with stddev ~= sqrt(2/n_out)
    fx.seed(0)
    v = fx.kaiming_uniform(n_in, n_out)
    s2 = math.sqrt(6 / n_out)
    assert -1 * s2 < float(v.min()) < -0.9 * s2
    assert 0.9 * s2 < float(v.max()) < 1 * s2
    assert v.dtype == jnp.float32
    v = fx.kaiming_normal(n_in, n_out)
    s2 = math.sqrt(2 / n_out)
    assert 0.9 * s2 < float(jnp.std(v, ddof=1)) < 1.1 * s2
    assert v.dtype == jnp.float32


def test_orthogonal():
    # A matrix of dim = (m,n) with m > n should produce a QR decomposition. In the other
    # case, the transpose should be taken to compute the QR decomposition.
    fx.seed(0)
    for rows, cols in [(5, 3), (3, 5)]:
        v = np.asarray(fx.orthogonal(rows, cols), np.float64)
        if rows < cols:
            np.testing.assert_allclose(v @ v.T, np.eye(rows), atol=1e-6)
        else:
            np.testing.assert_allclose(v.T @ v, np.eye(cols), atol=1e-6)
    for mat in [(3, 4, 5), (2, 2, 5)]:
        v = np.asarray(fx.orthogonal(*mat), np.float64)
        cols = mat[-1]
        rows = math.prod(mat) // cols
        # Julia's reshape is column-major: its (rows, cols) matrix is our row-major
        # reshape of the transposed axes; the columns are the last axis in both.
        v = v.reshape(rows, cols)
        if rows < cols:
            np.testing.assert_allclose(v @ v.T, np.eye(rows), atol=1e-6)
        else:
            np.testing.assert_allclose(v.T @ v, np.eye(cols), atol=1e-6)


def test_sparse_init():
    fx.seed(0)
    with pytest.raises(ValueError, match="2-D"):
        fx.sparse_init(100, 100, 100, sparsity=0.1)
    v = fx.sparse_init(100, 100, sparsity=-0.1)
    assert int(jnp.sum(v == 0)) == 0
    assert v.dtype == jnp.float32
    v = fx.sparse_init(100, 100, sparsity=1.1)
    assert int(jnp.sum(v == 0)) == v.size
    assert v.dtype == jnp.float32
    for n_in, n_out, sparsity, sigma in [(100, 100, 0.25, 0.1), (100, 400, 0.75, 0.01)]:
        expected_zeros = math.ceil(n_in * sparsity)
        v = np.asarray(fx.sparse_init(n_in, n_out, sparsity=sparsity, std=sigma))
        assert all(int(np.sum(v[:, col] == 0)) == expected_zeros for col in range(n_out))
        assert 0.9 * sigma < np.std(v[v != 0], ddof=1) < 1.1 * sigma
        assert v.dtype == np.float32


def test_truncated_normal():
    # Statistical, as in Flux: 10^6 draws, about 1.3 of them expected within 0.01 of ±4.
    fx.seed(0)  # one stream for the loop
    for mu, sigma, lo, hi in [(0.0, 1, -2, 2), (0, 1, -4.0, 4)]:
        v = fx.truncated_normal(100, 100, 100, mean=mu, std=sigma, lo=lo, hi=hi)
        assert float(jnp.mean(v)) == pytest.approx(mu, abs=1e-2)
        assert float(jnp.min(v)) == pytest.approx(lo, abs=1e-2)
        assert float(jnp.max(v)) == pytest.approx(hi, abs=1e-2)
        assert v.dtype == jnp.float32


def test_partial_application():
    fx.seed(0)
    big = 1e9
    partial_ku = fx.kaiming_uniform(gain=big)
    assert float(partial_ku(8, 8).max()) > big / 2
    assert float(partial_ku(8, 8, gain=1).max()) < big / 2
    partial_kn = fx.kaiming_normal(gain=big)
    assert float(partial_kn(8, 8).max()) > big / 2
    assert float(partial_kn(8, 8, gain=1).max()) < big / 2
    partial_si = fx.sparse_init(sparsity=1)
    assert float(partial_si(8, 8).max()) == 0
    assert float(partial_si(8, 8, sparsity=0).max()) > 0


def test_identity_init_basic():
    partial = fx.identity_init(gain=3)
    expected = [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    np.testing.assert_array_equal(partial(3, 3), expected)
    np.testing.assert_array_equal(fx.identity_init(3, 3, gain=3), expected)


def test_identity_init_non_identity_sizes():
    np.testing.assert_array_equal(fx.identity_init(2, 3)[:, -1], np.zeros(2, np.float32))
    np.testing.assert_array_equal(fx.identity_init(3, 2, shift=1)[0, :], np.zeros(2))
    np.testing.assert_array_equal(fx.identity_init(1, 1, 3, 4)[:, :, :, -1], np.zeros((1, 1, 3)))
    np.testing.assert_array_equal(fx.identity_init(2, 1, 3, 3)[-1, :, :, :], np.zeros((1, 3, 3)))
    np.testing.assert_array_equal(fx.identity_init(1, 2, 3, 3)[:, -1, :, :], np.zeros((1, 3, 3)))


def test_identity_init_dense_id_mapping():
    layer = fx.Dense(3, 3, init=fx.identity_init)
    indata = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    np.testing.assert_array_equal(layer(indata), indata)


# -- "Params" ---------------------------------------------------------------------------------


def _sizes(ps):
    return [tuple(p.shape) for p in ps]


def test_params():
    m = fx.Dense(10, 5)
    assert _sizes(fx.params(m)) == [(5, 10), (5,)]
    # (the RNN(10, 5) half is left out: no recurrent layers yet)
    # Layer duplicated in same chain, params just once pls.
    c = fx.Chain(m, m)
    assert _sizes(fx.params(c)) == [(5, 10), (5,)]
    # Self-referential array. Just want params, no stack overflow pls.
    r = [None, m]
    r[0] = r
    assert _sizes(fx.params(r)) == [(5, 10), (5,)]


# -- "Precision" ------------------------------------------------------------------------------


def test_precision():
    m = fx.Chain(fx.Dense(10, 5, fx.relu), fx.Dense(5, 2))
    rng = np.random.default_rng(0)
    x64, x32 = rng.random(10), rng.random(10).astype(np.float32)
    assert m[0].weight.dtype == jnp.float32
    assert m(x32).dtype == jnp.float32
    # Flux: eltype(m(x64)) == Float64. fluxjax: a float32 layer computes in float32 and
    # returns float32 whatever the input's precision (README, differences).
    assert m(x64).dtype == jnp.float32
    with pytest.warns(UserWarning, match="x64"):
        m64 = fx.f64(m)
    assert m64(x32).dtype == jnp.float64
    assert m64(x64).dtype == jnp.float64
    assert m64[0].weight.dtype == jnp.float64
    assert fx.f32(fx.f64(m))[0].weight.dtype == jnp.float32


# -- "Patience triggers" ------------------------------------------------------------------------


def test_patience():
    trigger = fx.patience(lambda: True, 3)
    assert [trigger(), trigger(), trigger()] == [False, False, True]
    v = [False, True, False, True, True, True]
    trigger = fx.patience(lambda i: v[i], 3)
    n_iter = 0
    for i in range(len(v)):
        if trigger(i):
            break
        n_iter += 1
    assert n_iter == 5


def _run(es, arg):
    n_iter = 0
    while n_iter < 99:
        if arg(es, n_iter):
            break
        n_iter += 1
    return n_iter


def test_early_stopping_args_and_kwargs():
    def f(x, *, y=1):
        return x + y

    # fluxjax's init_score defaults to inf (Flux >= 0.16.8): one more call than v0.12's 0
    es = fx.early_stopping(f, 10, min_dist=3)
    assert _run(es, lambda es, n: es(-n, y=-n)) == 10
    es = fx.early_stopping(f, 10, min_dist=3, init_score=0)  # v0.12's default: Flux's count
    assert _run(es, lambda es, n: es(-n, y=-n)) == 9


def test_early_stopping_distance():
    def distance(best, score):
        return score - best

    # maximising: fluxjax needs init_score=-inf (with the default inf nothing beats it)
    es = fx.early_stopping(lambda x: x, 10, distance=distance, init_score=-math.inf)
    assert _run(es, lambda es, n: es(n)) == 99
    es = fx.early_stopping(lambda x: x, 10, distance=distance, init_score=0)  # v0.12
    assert _run(es, lambda es, n: es(n)) == 99


def test_early_stopping_init_score():
    es = fx.early_stopping(lambda x: x, 10, init_score=10)
    assert _run(es, lambda es, n: es(n)) == 10


def test_plateau():
    state = {"v": 10.0}

    def f():
        v = state["v"]
        state["v"] = v / abs(v) - v
        return state["v"]

    trigger = fx.plateau(f, 3, init_score=10, min_dist=18)
    n_iter = 0
    while n_iter < 99:
        if trigger():
            break
        n_iter += 1
    assert n_iter == 3
