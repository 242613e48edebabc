"""Initialisers: Flux's formulas and fan rules (flux-spec §5), checked on large draws."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx
from fluxjax import init

KEY = jax.random.PRNGKey(7)
ROWS, COLS = 400, 500  # a Dense weight (out, in): fan_in = 500, fan_out = 400

# (id, initialiser with its required keywords bound)
RANDOM = [
    ("glorot_uniform", fx.glorot_uniform),
    ("glorot_normal", fx.glorot_normal),
    ("kaiming_uniform", fx.kaiming_uniform),
    ("kaiming_normal", fx.kaiming_normal),
    ("truncated_normal", fx.truncated_normal),
    ("lecun_normal", fx.lecun_normal),
    ("orthogonal", fx.orthogonal),
    ("sparse_init", fx.sparse_init(sparsity=0.3)),
    ("rand32", fx.rand32),
    ("randn32", fx.randn32),
]
ALL = [*RANDOM, ("identity_init", fx.identity_init)]


def ids(table):
    return [c[0] for c in table]


@pytest.mark.parametrize("name, f", ALL, ids=ids(ALL))
def test_shape_dtype_and_tuple_form(name, f):
    w = f(3, 4, key=KEY)  # one size for the whole table: each new size costs a compilation
    assert w.shape == (3, 4) and w.dtype == jnp.float32
    np.testing.assert_array_equal(f((3, 4), key=KEY), w)


@pytest.mark.parametrize("name, f", ALL, ids=ids(ALL))
def test_float32_even_with_x64_enabled(name, f):
    with jax.enable_x64(True):
        assert f(3, 4, key=KEY).dtype == jnp.float32


@pytest.mark.parametrize("name, f", RANDOM, ids=ids(RANDOM))
def test_reproducible_with_key_and_with_seed(name, f):
    np.testing.assert_array_equal(f(3, 4, key=KEY), f(3, 4, key=KEY))
    np.testing.assert_array_equal(f(3, 4, key=3), f(3, 4, key=jax.random.PRNGKey(3)))
    np.testing.assert_array_equal(f(KEY, 3, 4), f(3, 4, key=KEY))  # Flux's init(rng, dims...)
    assert not np.array_equal(f(3, 4, key=KEY), f(3, 4, key=jax.random.PRNGKey(8)))
    fx.seed(11)
    a, b = f(3, 4), f(3, 4)
    fx.seed(11)
    np.testing.assert_array_equal(f(3, 4), a)
    assert not np.array_equal(a, b)  # the global stream advances


@pytest.mark.parametrize("name, f", RANDOM[:8], ids=ids(RANDOM[:8]))
def test_partial_forms(name, f):
    bare = f()
    assert callable(bare) and bare(3, 4).shape == (3, 4)
    keyed = f(key=KEY)
    first, second = keyed(3, 4), keyed(3, 4)
    assert not np.array_equal(first, second)  # a keyed partial is a stream, as Flux's rng
    again = f(key=KEY)
    np.testing.assert_array_equal(again(3, 4), first)
    np.testing.assert_array_equal(again(3, 4), second)


def test_partial_keywords_are_bound_and_can_be_overridden():
    p = fx.kaiming_normal(gain=1.0)
    w = np.asarray(p(ROWS, COLS))
    assert np.std(w) == pytest.approx(1 / math.sqrt(COLS), rel=0.02)
    w = np.asarray(p(ROWS, COLS, gain=3.0))
    assert np.std(w) == pytest.approx(3 / math.sqrt(COLS), rel=0.02)


def test_rand32_and_randn32_without_sizes_are_scalars_as_in_flux():
    assert fx.rand32().shape == () and fx.randn32().shape == ()
    assert callable(fx.rand32(key=KEY)) and fx.rand32(key=KEY)(2).shape == (2,)


@pytest.mark.parametrize("name, f", ALL, ids=ids(ALL))
@pytest.mark.parametrize("bad", [-1, 2.5, "3", True, None])
def test_bad_sizes_name_the_value(name, f, bad):
    with pytest.raises(ValueError, match=re_escape(repr(bad))):
        f(3, bad, key=KEY)


def re_escape(s):
    import re

    return re.escape(s)


@pytest.mark.parametrize(
    "dims, fans",
    [
        ((), (1, 1)),
        ((7,), (1, 7)),
        ((3, 4), (4, 3)),  # Dense (out, in)
        ((3, 3, 2, 8), (18, 72)),  # conv (kh, kw, cin, cout)
        ((5, 2, 4), (10, 20)),  # 1-D conv
        ((2, 3, 4, 5, 6), (120, 144)),  # 3-D conv
    ],
)
def test_nfan(dims, fans):
    assert fx.nfan(*dims) == fans
    assert fx.nfan(dims) == fans


def test_glorot_uniform_bounds_and_variance():
    for gain in (1.0, 2.5):
        w = np.asarray(fx.glorot_uniform(ROWS, COLS, key=KEY, gain=gain))
        a = gain * math.sqrt(6 / (ROWS + COLS))
        assert -a <= w.min() < -0.99 * a and 0.99 * a < w.max() <= a
        assert w.var() == pytest.approx(a**2 / 3, rel=0.02)
        assert abs(w.mean()) < 0.01 * a


def test_glorot_normal_std():
    for gain in (1.0, 0.5):
        w = np.asarray(fx.glorot_normal(ROWS, COLS, key=KEY, gain=gain))
        assert w.std() == pytest.approx(gain * math.sqrt(2 / (ROWS + COLS)), rel=0.02)


@pytest.mark.parametrize("gain", [math.sqrt(2), 1.0, 3.0])
def test_kaiming_uses_fan_in_and_gain(gain):
    kw = {} if gain == math.sqrt(2) else {"gain": gain}
    w = np.asarray(fx.kaiming_uniform(ROWS, COLS, key=KEY, **kw))
    bound = math.sqrt(3) * gain / math.sqrt(COLS)
    assert -bound <= w.min() < -0.99 * bound and 0.99 * bound < w.max() <= bound
    w = np.asarray(fx.kaiming_normal(ROWS, COLS, key=KEY, **kw))
    assert w.std() == pytest.approx(gain / math.sqrt(COLS), rel=0.02)


def test_conv_kernels_use_the_conv_fan_rule():
    w = np.asarray(fx.kaiming_normal(5, 5, 16, 32, key=KEY))  # fan_in = 5·5·16 = 400
    assert w.std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    w = np.asarray(fx.glorot_uniform(5, 5, 16, 32, key=KEY))  # a = √(6 / (400 + 800))
    assert w.max() == pytest.approx(math.sqrt(6 / 1200), rel=0.01)


def truncated_moments(mu, sigma, lo, hi):
    """Mean and variance of N(mu, sigma²) truncated to [lo, hi] (closed form)."""
    pdf = lambda z: math.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    z = cdf(b) - cdf(a)
    r = (pdf(a) - pdf(b)) / z
    return mu + sigma * r, sigma**2 * (1 + (a * pdf(a) - b * pdf(b)) / z - r**2)


@pytest.mark.parametrize(
    "kw", [{}, {"mean": 0.5, "std": 2.0, "lo": -1.0, "hi": 3.0}, {"std": 0.5, "lo": 0.0}]
)
def test_truncated_normal_limits_and_moments(kw):
    w = np.asarray(fx.truncated_normal(ROWS, COLS, key=KEY, **kw), np.float64)
    lo, hi = kw.get("lo", -2.0), kw.get("hi", 2.0)
    mean, var = truncated_moments(kw.get("mean", 0.0), kw.get("std", 1.0), lo, hi)
    assert lo <= w.min() and w.max() <= hi
    assert w.mean() == pytest.approx(mean, abs=5 * math.sqrt(var / w.size))
    assert w.var() == pytest.approx(var, rel=0.02)


def test_truncated_normal_warns_when_mean_is_far_outside_the_limits():
    with pytest.warns(UserWarning, match="2 std"):
        fx.truncated_normal(10, key=KEY, mean=10.0)


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_lecun_normal_std(gain):
    w = np.asarray(fx.lecun_normal(ROWS, COLS, key=KEY, gain=gain))
    assert w.std() == pytest.approx(gain / math.sqrt(COLS), rel=0.02)


@pytest.mark.parametrize(
    "dims, gain",
    [((50, 20), 1.0), ((20, 50), 1.0), ((30, 30), 2.0), ((3, 3, 4, 8), 1.0), ((2, 3, 40), 0.5)],
)
def test_orthogonal(dims, gain):
    w = np.asarray(fx.orthogonal(*dims, key=KEY, gain=gain), np.float64).reshape(-1, dims[-1])
    rows, cols = w.shape
    gram = w.T @ w if rows >= cols else w @ w.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-5)


def test_orthogonal_is_sign_corrected_so_its_distribution_is_haar():
    # Q·diag(sign(diag R)): without the correction a Householder QR makes diag(Q) mostly < 0
    w = np.asarray(fx.orthogonal(300, 100, key=KEY))
    assert 0.35 < (np.diag(w) < 0).mean() < 0.65


def test_orthogonal_of_one_size_is_a_unit_vector():
    assert float(jnp.linalg.norm(fx.orthogonal(7, key=KEY))) == pytest.approx(1, rel=1e-6)
    with pytest.raises(ValueError, match="orthogonal"):
        fx.orthogonal((), key=KEY)


@pytest.mark.parametrize("sparsity, zeros", [(0.25, 10), (0.26, 11), (0.0, 0), (1.5, 40)])
def test_sparse_init_zeros_per_column(sparsity, zeros):
    w = np.asarray(fx.sparse_init(40, 300, sparsity=sparsity, key=KEY))
    np.testing.assert_array_equal((w == 0).sum(axis=0), np.full(300, zeros))
    if 0 < zeros < 40:
        patterns = {tuple(np.flatnonzero(w[:, j] == 0)) for j in range(300)}
        assert len(patterns) > 250  # columns were shuffled independently
        assert w[w != 0].std() == pytest.approx(0.01, rel=0.05)


def test_sparse_init_std_and_dims():
    w = np.asarray(fx.sparse_init(100, 200, sparsity=0.1, std=0.5, key=KEY))
    assert w[w != 0].std() == pytest.approx(0.5, rel=0.03)
    with pytest.raises(ValueError, match="2-D"):
        fx.sparse_init(3, 4, 5, sparsity=0.1, key=KEY)


def test_identity_init():
    np.testing.assert_array_equal(fx.identity_init(4), np.zeros(4))
    np.testing.assert_array_equal(fx.identity_init(3, 5, gain=2), 2 * np.eye(3, 5))
    np.testing.assert_array_equal(fx.identity_init(5, 3), np.eye(5, 3))
    np.testing.assert_array_equal(fx.identity_init(3, 3, shift=1), np.roll(np.eye(3), 1, 0))
    np.testing.assert_array_equal(
        fx.identity_init(3, 4, shift=(1, 2)), np.roll(np.eye(3, 4), (1, 2), (0, 1))
    )
    w = np.asarray(fx.identity_init(3, 4, 2, 5, gain=1.5))  # centre ⌈3/2⌉, ⌈4/2⌉ → index 1, 1
    expected = np.zeros((3, 4, 2, 5))
    expected[1, 1, 0, 0] = expected[1, 1, 1, 1] = 1.5
    np.testing.assert_array_equal(w, expected)


def test_identity_init_conv_acts_as_identity():
    x = jax.random.normal(KEY, (1, 6, 6, 3))
    w = fx.identity_init(3, 3, 3, 3)
    y = jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_constant_and_random_arrays():
    np.testing.assert_array_equal(fx.zeros32(2, 3), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(fx.ones32((2,)), np.ones(2, np.float32))
    assert fx.zeros32().shape == () and fx.ones32(2).dtype == jnp.float32
    u = np.asarray(fx.rand32(ROWS, COLS, key=KEY))
    assert u.min() >= 0 and u.max() < 1 and u.mean() == pytest.approx(0.5, abs=0.005)
    n = np.asarray(fx.randn32(ROWS, COLS, key=KEY))
    assert n.mean() == pytest.approx(0, abs=0.01) and n.std() == pytest.approx(1, rel=0.01)


@pytest.mark.parametrize("name", init.__all__)
def test_public_names_documented(name):
    f = getattr(fx, name)
    assert f is getattr(init, name) and ">>>" in f.__doc__
