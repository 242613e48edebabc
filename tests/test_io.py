"""state/loadmodel, save/load: round trips against independent copies, every error path."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx
from fluxjax.optimise.interface import implicit_state


class Stats(fx.Module):
    """A layer with non-trainable arrays: a running mean, a step counter and a PRNG key."""

    def __init__(self, n):
        self.scale = jnp.ones(n)
        self.mean = jnp.zeros(n)
        self.count = jnp.zeros((), jnp.int32)
        self.key = jax.random.key(3)

    def trainable(self):
        return ("scale",)

    def __call__(self, x):
        return self.scale * (x - self.mean)


def model():
    return fx.Chain(fx.Dense(2, 3, fx.relu), Stats(3), fx.Dense(3, 1))


def randomise(m, seed):
    rng = np.random.default_rng(seed)
    for _name, slot in fx.io.named_arrays(m).items():
        a = slot.get()
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            slot.set(jax.random.key(int(rng.integers(1000))))
        else:
            slot.set(jnp.asarray(rng.normal(size=a.shape), a.dtype))
    return m


def host(m):
    out = {}
    for k, s in fx.io.named_arrays(m).items():
        a = s.get()
        out[k] = np.asarray(jax.random.key_data(a) if k.endswith("key") else a)
    return out


def assert_same(a, b):
    ha, hb = host(a), host(b)
    assert ha.keys() == hb.keys()
    for k in ha:
        np.testing.assert_array_equal(ha[k], hb[k], err_msg=k)
        assert ha[k].dtype == hb[k].dtype


# -- state / loadmodel --------------------------------------------------------------------
def test_state_covers_every_array_and_loadmodel_inverts_it():
    a, b = randomise(model(), 1), randomise(model(), 2)
    s = fx.state(a)
    assert set(s["layers"][1]) == {"scale", "mean", "count", "key"}
    assert s["layers"][0]["weight"] is not a[0].weight  # copies
    assert fx.loadmodel(b, s) is b
    assert_same(a, b)
    assert b[1].key.dtype == a[1].key.dtype  # still a typed key


def test_loadmodel_keeps_tied_arrays_tied():
    d = fx.Dense(2, 2)
    m = fx.Chain(d, d)
    fx.loadmodel(m, fx.state(fx.Chain(fx.Dense(2, 2), fx.Dense(2, 2))))
    assert m[0].weight is m[1].weight and len(fx.params(m)) == 2


def test_loadmodel_names_every_mismatch_and_changes_nothing():
    m = model()
    before = host(m)
    s = fx.state(model())
    s["layers"][0]["weight"] = np.zeros((4, 2), np.float32)
    del s["layers"][2]["bias"]
    s["layers"][1]["extra"] = np.zeros(1)
    s["layers"][1]["count"] = np.zeros((), np.float32)
    with pytest.raises(ValueError) as e:
        fx.loadmodel(m, s)
    text = str(e.value)
    assert "layers.0.weight: shape (3, 2) in the model vs (4, 2) given" in text
    assert "missing: layers.2.bias (shape (1,))" in text
    assert "unexpected: layers.1.extra" in text
    assert "layers.1.count: dtype int32 in the model vs float32 given" in text
    for k, v in host(m).items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(TypeError, match="nested dict from fx.state"):
        fx.loadmodel(m, [1, 2])
    with pytest.raises(TypeError, match="fluxjax Module"):
        fx.state(np.zeros(3))


# -- save / load ----------------------------------------------------------------------------
X = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
Y = X[:, :1] - X[:, 1:]


def trained(mode, rule, steps=3, frozen=False):
    m = randomise(model(), 5)
    m[1].mean = jnp.zeros(3)
    if mode == "implicit":
        opt = rule
        fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)] * steps, opt, compile=False)
    else:
        opt = fx.setup(rule, m)
        if frozen:
            fx.freeze(opt.layers[0])
        fx.adjust(opt.layers[2], 0.05)
        fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(X, Y)] * steps, opt, compile=False)
    return m, opt


def opt_arrays(mode, opt, m):
    if mode == "implicit":
        recs = implicit_state(opt, fx.params(m).entries)
        return [np.asarray(a) for r in recs for a in jax.tree_util.tree_leaves((r.state, r.t))]
    from fluxjax.optimise.state import leaves as _leaves

    leaves = list(_leaves(opt))
    out = [np.asarray(a) for lf in leaves for a in jax.tree_util.tree_leaves((lf.state, lf.t))]
    return out + [lf.frozen for lf in leaves] + [repr(lf.rule) for lf in leaves]


RULES = [
    lambda: fx.Adam(0.01),
    lambda: fx.OptimiserChain(fx.ClipNorm(1.0), fx.Momentum(0.01)),
    lambda: fx.Descent(fx.Exponential(0.01, 0.5)),  # a schedule: the counter t round-trips
]


@pytest.mark.parametrize("mode", ["implicit", "explicit"])
@pytest.mark.parametrize("make_rule", RULES)
def test_save_load_round_trips_model_and_optimiser(tmp_path, mode, make_rule):
    m, opt = trained(mode, make_rule(), frozen=True)
    path = tmp_path / "c.safetensors"
    fx.save(path, m, opt, step=3, epoch=1, note="x", scores=[1.5, 2.0])
    m2, opt2 = trained(mode, make_rule(), steps=1)
    info = fx.load(path, m2, opt2)
    assert info == {"step": 3, "epoch": 1, "note": "x", "scores": [1.5, 2.0]}
    assert_same(m, m2)
    for a, b in zip(opt_arrays(mode, opt, m), opt_arrays(mode, opt2, m2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_loaded_optimiser_continues_exactly(tmp_path):
    """Save after 3 Adam steps, load into fresh objects, 3 more steps == 6 uninterrupted."""
    m, opt = trained("implicit", fx.Adam(0.01), steps=6)
    m1, opt1 = trained("implicit", fx.Adam(0.01), steps=3)
    fx.save(tmp_path / "c.safetensors", m1, opt1)
    m2, opt2 = model(), fx.Adam(0.01)
    fx.load(tmp_path / "c.safetensors", m2, opt2)
    fx.train(lambda x, y: fx.mse(m2(x), y), fx.params(m2), [(X, Y)] * 3, opt2, compile=False)
    assert_same(m, m2)


def test_hyperparameters_are_restored(tmp_path):
    m = model()
    opt = fx.Adam(0.01, (0.8, 0.9))
    fx.save(tmp_path / "c.safetensors", m, opt)
    opt2 = fx.Adam()
    fx.load(tmp_path / "c.safetensors", model(), opt2)
    assert (opt2.eta, opt2.beta) == (0.01, (0.8, 0.9))


def test_file_is_plain_safetensors(tmp_path):
    from safetensors.numpy import load_file

    m = randomise(model(), 3)
    fx.save(tmp_path / "c.safetensors", m, fx.Adam())
    arrays = load_file(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(arrays["model/layers.0.weight"], np.asarray(m[0].weight))
    pytest.importorskip("torch")  # PyTorch tools read it too (torch is not a test extra)
    from safetensors.torch import load_file as torch_load

    t = torch_load(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(t["model/layers.2.bias"].numpy(), np.asarray(m[2].bias))


# -- bad files ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "c.safetensors"
    fx.save(path, randomise(model(), 4), fx.Adam(), step=1)
    return path.read_bytes()


def test_truncated_files_are_named(tmp_path, good):
    path = tmp_path / "t.safetensors"
    for cut in (0, 5, 9, 200, len(good) // 2, len(good) - 1):
        path.write_bytes(good[:cut])
        with pytest.raises(fx.CheckpointError, match=r"t\.safetensors is (truncated|not a)"):
            fx.load(path, model(), fx.Adam())


def test_corrupted_bytes_are_detected(tmp_path, good):
    path = tmp_path / "c.safetensors"
    n = int.from_bytes(good[:8], "little")
    for where in (len(good) - 3, 8 + n + 5):  # inside tensor data
        bad = bytearray(good)
        bad[where] ^= 0xFF
        path.write_bytes(bytes(bad))
        with pytest.raises(fx.CheckpointError, match="corrupted: the bytes of tensor"):
            fx.load(path, model(), fx.Adam())
    bad = bytearray(good)
    bad[20] = ord("}")  # inside the JSON header
    path.write_bytes(bytes(bad))
    with pytest.raises(fx.CheckpointError, match="c.safetensors is"):
        fx.load(path, model())


def test_foreign_files_are_named(tmp_path):
    from safetensors.numpy import save_file

    cases = {
        "text.safetensors": b"hello, this is not a checkpoint at all",
        "json.safetensors": b'{"weight": [1, 2, 3]}' * 3,
        "zero.safetensors": b"\x00" * 64,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(fx.CheckpointError, match=name.replace(".", r"\.")):
            fx.load(tmp_path / name, model())
    save_file({"w": np.zeros(3, np.float32)}, tmp_path / "hf.safetensors")
    with pytest.raises(fx.CheckpointError, match="not a fluxjax checkpoint.*'w'"):
        fx.load(tmp_path / "hf.safetensors", model())
    with pytest.raises(FileNotFoundError, match="nope.safetensors does not exist"):
        fx.load(tmp_path / "nope.safetensors", model())


def test_other_architecture_and_other_optimiser(tmp_path):
    path = tmp_path / "c.safetensors"
    fx.save(path, model(), fx.Adam())
    with pytest.raises(fx.CheckpointError, match=r"saved from another model(.|\n)*layers.2"):
        fx.load(path, fx.Chain(fx.Dense(2, 3, fx.relu), Stats(3)))
    with pytest.raises(fx.CheckpointError, match="rule is Adam"):
        fx.load(path, model(), fx.Momentum())
    with pytest.raises(fx.CheckpointError, match="explicit mode"):
        fx.load(path, model(), fx.setup(fx.Adam(), model()))
    fx.save(path, model())
    with pytest.raises(fx.CheckpointError, match="holds no optimiser state"):
        fx.load(path, model(), fx.Adam())
    with pytest.raises(fx.CheckpointError, match="holds no DataLoader state"):
        fx.load(path, model(), loader=fx.DataLoader(X))


def test_save_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        fx.save(tmp_path / "no" / "c.safetensors", model())
    with pytest.raises(TypeError, match="extra value f=.*JSON values"):
        fx.save(tmp_path / "c.safetensors", model(), f=print)
    with pytest.raises(TypeError, match="step must be a non-negative int"):
        fx.save(tmp_path / "c.safetensors", model(), step=1.5)
    with pytest.raises(TypeError, match="opt must be the optimiser rule"):
        fx.save(tmp_path / "c.safetensors", model(), "adam")


def test_write_is_atomic(tmp_path, monkeypatch, good):
    """A failure at the last moment of a write (fsync) leaves the old file and no temporary."""
    path = tmp_path / "c.safetensors"
    path.write_bytes(good)

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        fx.save(path, model(), step=2)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["c.safetensors"]


def test_loader_state_round_trip_and_mismatch(tmp_path):
    loader = fx.DataLoader((X, Y), batchsize=3, shuffle=True, rng=1)
    it = iter(loader)
    next(it)
    fx.save(tmp_path / "c.safetensors", model(), loader=loader)
    rest = [xb for xb, _ in it] + [xb for xb, _ in loader]
    again = fx.DataLoader((X, Y), batchsize=3, shuffle=True, rng=99)
    fx.load(tmp_path / "c.safetensors", model(), loader=again)
    got = [xb for xb, _ in again] + [xb for xb, _ in again]
    assert len(got) == len(rest) == 5
    for a, b in zip(got, rest):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(fx.CheckpointError, match="batchsize=3 saved vs 4 here"):
        fx.load(tmp_path / "c.safetensors", model(), loader=fx.DataLoader((X, Y), batchsize=4))
