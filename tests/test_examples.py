"""Every script in examples/ runs at its tiny size, prints what it should and draws pictures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# name -> (texts its output must contain, pictures it writes with --out)
EXPECT = {
    "01_neuron": (
        ["σ, w = 5", "bump", "staircase", "Chain(Dense(1 => 2, sigmoid), Dense(2 => 1))"],
        ["neuron.png", "bump.png", "staircase.png", "staircase_chain.png"],
    ),
    "02_fit_four_regimes": (
        [
            "all data each step",
            "one observation per step",
            "batches of 7, shuffled",
            "DataLoader(batchsize=3)",
            "after the reset",
            "the wider model",
        ],
        ["fit.png", "fit_more.png", "loss.png", "train.gif"],
    ),  # fmt: skip
    "03_dataloader": (
        ["[[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]", "... partial=False", "16 batches"],
        ["fit.png"],
    ),
    "04_params_selection": (
        [
            "params(m)           [(4, 1), (4,), (1, 4), (1,)]",
            "m[0].weight  unchanged",
            "m[1].weight  changed",
        ],
        [],
    ),  # fmt: skip
    "05_initialisers": (["kaiming_normal", "fx.f64(model): dtypes ['float64']"], []),
    "06_losses": (["fx.tversky_loss", "fx.logitcrossentropy", "mean |ŷ − y|^1.5"], []),
    "07_digits": (
        ["softmax + crossentropy", "logitcrossentropy", "test accuracy", "averaged weights"],
        ["chain.png", "loss.png"],
    ),  # fmt: skip
    "08_compare_optimisers": (
        ["optimiser rules", "rosenbrock:", "saddle:", "seed:"],
        [
            "rosenbrock_paths.png",
            "rosenbrock_loss.png",
            "saddle_paths.png",
            "saddle_loss.png",
            "seed_loss.png",
        ],
    ),
    "09_fit2d": (["121 points"], ["fit2d.png", "loss.png", "chain.png"]),
    "10_conv": (
        ["(1, 8, 8, 1) -> (1, 16, 16, 4)", "Conv((3, 3), 16 => 32, relu, pad=1)", "test accuracy"],
        [],
    ),
    "11_recurrent": (
        [
            "sequence (3, 7, 2) -> (3, 7, 6); step by step equal: True",
            "first step again equal: True",
            "test accuracy",
        ],
        [],
    ),  # fmt: skip
    "12_normalise": (
        [
            "outside train: [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]",
            "BatchNorm running mean",
            "LayerNorm(4): per-row mean [0.0000, 0.0000]",
        ],
        [],
    ),  # fmt: skip
    "13_containers": (["ae.enc = Dense(8 => 2, tanh)", "indices (2, 3) -> (2, 3, 4)"], []),
    "14_transformer": (["94 distinct", "epoch  2  validation loss", "sample: "], []),
}


def test_every_example_is_checked():
    assert sorted(p.stem for p in EXAMPLES.glob("[0-9]*.py")) == sorted(EXPECT)


def _run(name: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    argv = [sys.executable, "-W", "error", str(EXAMPLES / f"{name}.py")]
    if EXPECT[name][1]:
        argv += ["--out", str(out)]
    if int(name[:2]) % 2:  # half of them are made tiny by the flag, half by the variable
        argv.append("--tiny")
    else:
        env["FLUXJAX_EXAMPLE_TINY"] = "1"
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run all examples, two at a time; name -> (completed process, picture folder)."""
    root = tmp_path_factory.mktemp("examples")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, name, root / name) for name in EXPECT}
    return {name: (f.result(), root / name) for name, f in futures.items()}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_example_runs_and_prints(runs, name):
    done, _ = runs[name]
    assert done.returncode == 0, done.stderr[-3000:]
    for text in EXPECT[name][0]:
        assert text in done.stdout, f"{name} should print {text!r}"
    assert "Warning" not in done.stderr


@pytest.mark.parametrize("name", sorted(n for n in EXPECT if EXPECT[n][1]))
def test_example_pictures(runs, name):
    done, folder = runs[name]
    assert done.returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(EXPECT[name][1])
    for picture in folder.iterdir():
        assert 0 < picture.stat().st_size < 300_000
        with Image.open(picture) as im:
            assert im.format == ("GIF" if picture.suffix == ".gif" else "PNG")
            assert im.size[0] >= 300 and im.size[1] >= 200
            im.convert("RGB").load()


@pytest.mark.parametrize("name", ["02_fit_four_regimes", "03_dataloader", "09_fit2d"])
def test_example_losses_fall(runs, name):
    losses = [float(v) for v in re.findall(r"epoch +\d+  loss ([\d.]+)", runs[name][0].stdout)]
    assert len(losses) >= 3 and losses[2] < losses[0]


def test_transformer_validation_loss_falls(runs):
    """The character-level transformer learns: its validation loss falls each epoch, from
    about log(94) ≈ 4.5 at the start to well below it."""
    out = runs["14_transformer"][0].stdout
    losses = [float(v) for v in re.findall(r"validation loss ([\d.]+)", out)]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2]
    assert losses[0] > 4.0 and losses[2] < 3.2
