"""Modules: pytree registration, attribute conversion, repr, trainable, fmap/f32/f64."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx


class Scale(fx.Module):
    def __init__(self, n):
        self.alpha = jnp.ones(n)
        self.mean = jnp.zeros(n)  # a non-trainable running value
        self.momentum = 0.5

    def trainable(self):
        return ("alpha",)

    def __call__(self, x):
        return self.alpha * x


def test_subclass_is_a_pytree_and_grad_is_model_shaped():
    m = fx.Chain(fx.Dense(2, 3, fx.relu), Scale(3))
    leaves, treedef = jax.tree_util.tree_flatten(m)
    assert len(leaves) == 4  # weight, bias, alpha, mean
    g = jax.grad(lambda m: m(jnp.ones((5, 2))).sum())(m)
    assert type(g) is fx.Chain and type(g[1]) is Scale
    assert g[1].momentum == 0.5 and g[0].act is fx.relu
    # d/d alpha of sum(alpha * h) is the column sums of h
    h = m[0](jnp.ones((5, 2)))
    np.testing.assert_allclose(g[1].alpha, h.sum(0), rtol=1e-6)
    np.testing.assert_array_equal(g[1].mean, 0)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is fx.Chain and rebuilt[1].momentum == 0.5


def test_key_paths_name_the_attributes():
    m = fx.Chain(fx.Dense(1, 2))
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(m)[0]]
    assert paths == [".layers[0].weight", ".layers[0].bias"]


def test_assignment_converts_and_keeps_dtype():
    d = fx.Dense(1, 4)
    d.weight = [[5.0], [-5.0], [-5.0], [-5.0]]
    assert isinstance(d.weight, jax.Array) and d.weight.dtype == jnp.float32
    d.weight = np.ones((4, 1), dtype=np.float64)
    assert d.weight.dtype == jnp.float32
    d.bias = [1, 2, 3, 4]  # ints into a float32 slot
    assert d.bias.dtype == jnp.float32
    np.testing.assert_array_equal(d.bias, [1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"Dense.weight has shape \(4, 1\).*shape \(4,\)"):
        d.weight = [5.0, -5.0, -5.0, -5.0]  # Flux's column is (4, 1) here too
    np.testing.assert_array_equal(d.weight, 1)  # unchanged
    del d.weight
    d.weight = np.zeros((4, 2), np.float32)  # a deliberate new shape
    assert d.weight.shape == (4, 2)


def test_repr_in_flux_form():
    m = fx.Chain(fx.Dense(1, 4, fx.sigmoid), fx.Dense(4, 1))
    assert repr(m) == "Chain(Dense(1 => 4, sigmoid), Dense(4 => 1))  # 13 parameters"
    assert (
        repr(fx.Dense(5, 2, fx.tanh, bias=False))
        == "Dense(5 => 2, tanh; bias=False)  # 10 parameters"
    )
    assert repr(fx.Chain(fx.Dense(2, 2), fx.softmax)).startswith("Chain(Dense(2 => 2), softmax)")
    assert repr(Scale(3)).endswith("# 3 parameters, plus 3 non-trainable")
    big = fx.Dense(784, 64)
    assert repr(big).endswith("# 50_240 parameters")


def test_trainable_hook_selects_parameters():
    s = Scale(3)
    assert list(fx.trainable(s)) == ["alpha"]
    assert [p.shape for p in fx.params(s)] == [(3,)]
    assert fx.nparams(s) == 3 and fx.nparams(s, trainable_only=False) == 6


def test_fmap_keeps_tied_arrays_tied():
    a = fx.Dense(2, 2)
    b = fx.Dense(2, 2)
    b.weight = a.weight
    m = fx.Chain(a, b)
    z = fx.fmap(lambda w: w * 0, m)
    assert z[0].weight is z[1].weight
    assert m[0].weight is not z[0].weight  # a copy, the original is untouched
    assert fx.f32(m)[0].weight.dtype == jnp.float32


def test_f64_in_a_fresh_process():
    # f64 switches JAX's x64 mode for the whole process, so it runs in its own interpreter
    code = (
        "import warnings, jax.numpy as jnp, fluxjax as fx\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    m = fx.f64(fx.Chain(fx.Dense(1, 4, fx.sigmoid), fx.Dense(4, 1)))\n"
        "assert any('x64' in str(x.message) for x in w), w\n"
        "assert m[0].weight.dtype == jnp.float64, m[0].weight.dtype\n"
        "m[0].weight = [[1.0], [2.0], [3.0], [4.0]]\n"
        "assert m[0].weight.dtype == jnp.float64\n"
        "assert fx.glorot_uniform(2, 2).dtype == jnp.float32\n"
        "assert m(jnp.ones((3, 1))).dtype == jnp.float64\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_gpu_and_cpu_copy_the_model():
    m = fx.Dense(1, 1)
    c = fx.cpu(m)
    assert c is not m and c.weight is not m.weight
    np.testing.assert_array_equal(c.weight, m.weight)
    assert {d.platform for d in c.weight.devices()} == {"cpu"}
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    g = fx.gpu(m)
    if gpus:  # a copy on the first GPU, the same values
        assert g is not m and g.weight.devices() == {gpus[0]}
        np.testing.assert_array_equal(np.asarray(g.weight), np.asarray(m.weight))
    else:  # documented: without a GPU the model comes back unchanged
        assert g is m


def test_trainable_naming_a_missing_attribute_is_an_error():
    class Bad(fx.Module):
        def __init__(self):
            self.w = jnp.ones(2)

        def trainable(self):
            return ("v",)

    with pytest.raises(AttributeError, match="'v'.*its attributes are w"):
        fx.params(Bad())
