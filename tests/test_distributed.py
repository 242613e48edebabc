"""Data-parallel training (fluxjax.distributed): the same results as one device.

The multi-device cases run in subprocesses (``distributed_worker.py``): one with four
simulated CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``), and two
processes of two devices each joined by ``jax.distributed`` on 127.0.0.1 (Gloo). Each
subprocess is started once per module and bounded by a timeout.

One device against several agrees to float rounding (the reductions over the batch are
split over the devices); on the devices, the same steps split into calls in different ways
give the same bits, as on one device.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import fluxjax as fx
from fluxjax.distributed import Placement

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"
sys.path.insert(0, str(HERE))
import distributed_worker as worker  # noqa: E402

TIMEOUT = 240  # seconds; each run takes ~25 s of CPU, more on a loaded machine


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    # XLA's CPU client sizes its thread pool by the cores (2 here): simulated devices
    # waiting in an all-reduce can then starve the others and deadlock. More threads.
    env["PJRT_NPROC"] = str(max(os.cpu_count() or 1, 2 * devices))
    return env


def _fail(what: str, out: str) -> None:
    pytest.fail(f"{what} failed:\n{out[-3000:]}")


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    """The worker's results on 4 simulated devices (and on one, in the same process)."""
    out = tmp_path_factory.mktemp("dist") / "devices.npz"
    p = subprocess.run(
        [sys.executable, str(WORKER), "devices", str(out)],
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if p.returncode != 0:
        _fail("the 4-device worker", p.stdout + p.stderr)
    return dict(np.load(out))


def _arrays(r: dict, prefix: str) -> list[np.ndarray]:
    n = sum(1 for k in r if k.startswith(prefix + "_arr"))
    return [r[f"{prefix}_arr{i}"] for i in range(n)]


@pytest.mark.parametrize("case", ["seed_dp", "mlp_dp", "mlp_fsdp"])
def test_data_parallel_matches_one_device(four, case):
    name = case.split("_")[0]
    assert int(four["ndev"]) == 4
    one, many = _arrays(four, f"{name}_one"), _arrays(four, case)
    assert len(one) == len(many) > 0  # parameters (and for the MLP Adam's moments)
    np.testing.assert_allclose(four[f"{case}_losses"], four[f"{name}_one_losses"], atol=1e-5)
    for a, b in zip(one, many):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    # and training did move them: the comparison is not between two starting points
    assert np.abs(four[f"{name}_one_losses"][-1] - four[f"{name}_one_losses"][0]) > 1e-3


@pytest.mark.parametrize("tag", ["dp", "fsdp"])
def test_on_several_devices_the_same_steps_give_the_same_bits_however_split(four, tag):
    # the one program of a plan on 4 devices too: one call, one call per epoch, and a
    # callback after every step give the same parameters and Adam moments, bit for bit;
    # a plan compiles at most 2 programs, and a later call of the same shapes none
    one = _arrays(four, f"split_{tag}_one")
    assert len(one) == 30  # 6 parameters and Adam's 4 state arrays of each
    for way in ("per_epoch", "every_step"):
        other = _arrays(four, f"split_{tag}_{way}")
        assert len(other) == len(one)
        for a, b in zip(one, other):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), way
    for way in ("one", "per_epoch", "every_step"):
        assert int(four[f"split_{tag}_{way}_compiles"]) <= 2, way
    assert int(four[f"split_{tag}_later_compiles"]) == 0


@pytest.mark.parametrize("case", ["seed_dp", "mlp_dp", "mlp_fsdp"])
@pytest.mark.parametrize("run", ["stepped", "fused"])
def test_parameters_live_on_all_devices(four, case, run):
    name = case.split("_")[0]
    assert int(four[f"{name}_one_{run}_ndev"]) == 1
    assert int(four[f"{case}_{run}_ndev"]) == 4
    expected = "P('batch',)" if case == "mlp_fsdp" else "P()"
    assert str(four[f"{case}_{run}_spec"]) == expected


def test_shard_params_splits_the_largest_divisible_axis(four):
    # MLP 8-12-12-4: weights (12, 8), (12, 12), (4, 12); biases (12,), (12,), (4,)
    specs = [str(s) for s in four["mlp_fsdp_specs"]]
    assert specs == [
        "P('batch',)",
        "P('batch',)",
        "P('batch',)",
        "P('batch',)",
        "P(None, 'batch')",
        "P('batch',)",
    ]
    assert all(str(s) == "P()" for s in four["mlp_dp_specs"])


def test_training_again_without_devices_returns_to_one_device(four):
    assert four["back_ndev"].tolist() == [4, 1]


def test_indivisible_batch_is_a_clear_error(four):
    msg = str(four["error"])
    assert "2 observations" in msg and "4 devices" in msg
    assert "partial=False" in msg and "divisible by 4" in msg


# -- two processes ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "processes.npz"
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "process", str(out), str(port), str(pid), "2"],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for pid in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        _fail("the two-process run (timeout)", "\n".join(logs))
    if any(p.returncode != 0 for p in procs):
        _fail("the two-process run", "\n".join(logs))
    return dict(np.load(out))


def test_two_processes_match_one_process(two_processes):
    r = two_processes
    assert int(r["nglobal"]) == 4 and int(r["ndev"]) == 4  # 2 processes x 2 devices, joined
    # a sharded DataLoader runs fused (8 steps in one call), and gives the bits of the
    # same steps run one a call
    assert r["calls"].tolist() == [1, 8] and bool(r["same"])
    assert int(r["compiles"]) == 1  # the program; comparing the loaders compiles nothing
    # a sharded loader without devices=: each process would train alone; train says so
    assert "no gradients are combined" in str(r["warned"]), str(r["warned"])
    # loaders that would take different steps: an error naming what differs, not a hang
    unequal = str(r["unequal"])
    assert "differ in batches per epoch, nobs" in unequal, unequal
    assert "process 1: batches per epoch=3, nobs=48" in unequal, unequal
    ref = worker.process_reference(fx)
    np.testing.assert_allclose(r["losses"], ref["losses"], atol=1e-5)
    for i, a in enumerate(ref["params"]):
        np.testing.assert_allclose(r[f"arr{i}"], a, rtol=1e-5, atol=1e-5)


# -- in this process (one device) ------------------------------------------------------------
def test_one_device_is_no_placement():
    assert Placement.from_args() is None
    assert Placement.from_args(devices=jax.devices()[:1]) is None
    assert Placement.from_args(devices=1) is None
    assert Placement.from_args(mesh=Mesh(np.array(jax.devices()[:1]), ("batch",))) is None


def test_train_with_devices_on_one_device_trains_as_usual():
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(-1, 1)
    results = []
    for kw in ({}, {"devices": jax.devices()}):
        m = fx.Dense(np.zeros((1, 1), np.float32), np.zeros(1, np.float32))
        h = fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(x, 3 * x)], fx.Descent(0.5), **kw)
        results.append((h.losses, float(m.weight[0, 0])))
    # one plain gradient step from w = 0: dL/dw = -2 mean(3 x^2), so w = mean(3 x^2)
    assert results[0] == results[1]
    assert results[0][1] == pytest.approx(float(np.mean(3 * x**2)), rel=1e-6)


@pytest.mark.parametrize(
    ("kw", "error", "words"),
    [
        (
            {"devices": jax.devices(), "mesh": Mesh(np.array(jax.devices()), ("batch",))},
            ValueError,
            "not both",
        ),
        ({"shard_params": True}, ValueError, "devices=jax.devices()"),
        ({"devices": "gpu"}, TypeError, "'gpu'"),
        ({"devices": 99}, ValueError, "devices=99"),
        ({"mesh": Mesh(np.array(jax.devices()), ("data",))}, TypeError, "'batch' axis"),
        ({"devices": jax.devices(), "shard_params": 1}, TypeError, "shard_params"),
    ],
)
def test_bad_placement_arguments(kw, error, words):
    m = fx.Dense(1, 1)
    x = np.ones((4, 1), np.float32)
    with pytest.raises(error) as e:
        fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(x, x)], fx.Adam(), **kw)
    assert words in str(e.value)


# -- DataLoader(shard=...) ----------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("count", [2, 3])
def test_shards_together_are_the_unsharded_batches(shuffle, count):
    n, bs = 5 * count * 2 + count, 2 * count  # a short last batch of `count` observations
    x = np.arange(n)
    plain = list(fx.DataLoader(x, batchsize=bs, shuffle=shuffle, rng=7))
    parts = [
        list(fx.DataLoader(x, batchsize=bs, shuffle=shuffle, rng=7, shard=(i, count)))
        for i in range(count)
    ]
    assert all(len(p) == len(plain) for p in parts)
    for k, batch in enumerate(plain):
        together = np.concatenate([p[k] for p in parts])
        np.testing.assert_array_equal(together, batch)  # in process order
        assert all(len(p[k]) == len(batch) // count for p in parts)


def test_sharded_loader_reads_only_its_part_of_a_memmap(tmp_path):
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(8, 2))
    x[:] = np.arange(16, dtype=np.float32).reshape(8, 2)
    loader = fx.DataLoader(x, batchsize=4, shard=(1, 2))
    assert [b[:, 0].tolist() for b in loader] == [[4.0, 6.0], [12.0, 14.0]]
    assert loader.shard == (1, 2) and "shard=(1, 2)" in repr(loader)


@pytest.mark.parametrize(
    ("kw", "error", "words"),
    [
        ({"shard": (2, 2)}, ValueError, "0..1"),
        ({"shard": [0, 2]}, TypeError, "(index, count)"),
        ({"shard": (0, 3)}, ValueError, "batch of 4 observations cannot be split into 3"),
        ({"shard": (0, 4), "batchsize": 8}, ValueError, "partial=False"),
        ({"shard": (0, 2), "shuffle": True}, ValueError, "rng="),
    ],
)
def test_bad_shard(kw, error, words):
    kw = {"batchsize": 4, **kw}
    with pytest.raises(error) as e:
        fx.DataLoader(np.arange(10), **kw)
    assert words in str(e.value)
