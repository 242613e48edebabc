"""The command line: python -m fluxjax demo | compare | digits | rules."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fluxjax import datasets
from fluxjax.__main__ import main

COMMANDS = ["demo", "compare", "digits", "rules"]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def losses_by_regime(text):
    """The losses printed under each "[k/4]" heading of the demo."""
    blocks = re.split(r"\n\[\d/4\] ", text.split("\n[+]")[0])[1:]
    return [[float(v) for v in re.findall(r"epoch +\d+  loss ([\d.]+)", b)] for b in blocks]


def check_picture(path, kind, frames=None):
    assert path.is_file() and 0 < path.stat().st_size < 300_000
    with Image.open(path) as im:
        assert im.format == kind and im.size[0] >= 300 and im.size[1] >= 200
        if frames is not None:
            assert im.n_frames == frames
        im.convert("RGB").load()


# ---- help and bad arguments ----------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_command(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and out.startswith(f"usage: fluxjax {command}")


def test_top_level_help_lists_the_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(c in out for c in COMMANDS)
    code, out, _ = run(capsys)
    assert code == 1 and "usage: fluxjax" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["demo", "--epochs", "0"], "expected a positive integer, got 0"),
        (["demo", "--epochs", "many"], "expected a positive integer, got 'many'"),
        (["compare", "--problem", "nope"], "invalid choice: 'nope'"),
        (["compare", "--steps", "-3"], "expected a positive integer"),
        (["digits", "--wat"], "unrecognized arguments: --wat"),
    ],
)
def test_bad_arguments_are_argparse_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "usage:" in err


def test_rules_prints_the_table(capsys):
    code, out, _ = run(capsys, "rules")
    assert code == 0 and out.splitlines()[0].startswith("rule")
    assert "Adam(eta=0.001" in out and "Descent(eta=0.1)" in out


# ---- demo ----------------------------------------------------------------------------------


def test_demo_trains_four_regimes_and_writes_pictures(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    code, out, _ = run(capsys, "demo", "--epochs", "60", "--every", "20", "--frames", "5",
                       "--out", str(out_dir))  # fmt: skip
    assert code == 0
    regimes = losses_by_regime(out)
    assert len(regimes) == 4
    for losses in regimes:
        assert len(losses) == 4  # epoch 0, 20, 40, 60
        assert losses[-1] < losses[0]  # the printed losses fall
    assert "continued to 600 epochs" in out
    for name in ("fit.png", "loss.png", "train.gif"):
        assert f"  {out_dir / name}" in out
    check_picture(out_dir / "fit.png", "PNG")
    check_picture(out_dir / "loss.png", "PNG")
    check_picture(out_dir / "train.gif", "GIF", frames=6)


def test_demo_without_matplotlib_trains_and_says_so_once(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    code, out, _ = run(capsys, "demo", "--epochs", "10", "--out", str(tmp_path / "d"))
    assert code == 0
    assert out.count("pip install 'fluxjax[plots]'") == 1
    assert len(losses_by_regime(out)) == 4
    assert not (tmp_path / "d").exists()


def test_demo_no_plots(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--epochs", "5", "--no-plots", "--out", str(tmp_path / "x"))
    assert code == 0 and "pictures" not in out and not (tmp_path / "x").exists()


# ---- compare -------------------------------------------------------------------------------


def test_compare_writes_table_and_plots(capsys, tmp_path):
    code, out, _ = run(capsys, "compare", "--rules", "Descent(0.001),Adam(0.05)",
                       "--problem", "beale", "--steps", "25", "--out", str(tmp_path))  # fmt: skip
    assert code == 0
    table = (tmp_path / "table.txt").read_text(encoding="utf-8")
    assert table.strip() in out
    assert "Descent(0.001)" in table and "Adam(0.05)" in table and "25 steps each" in table
    check_picture(tmp_path / "loss.png", "PNG")
    check_picture(tmp_path / "paths.png", "PNG")


def test_compare_fit_problem_has_no_paths_and_default_rules(capsys, tmp_path):
    code, out, _ = run(capsys, "compare", "--problem", "seed", "--steps", "5", "--no-plots",
                       "--out", str(tmp_path))  # fmt: skip
    assert code == 0 and "Descent" in out and "RMSProp" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.txt"]


def test_compare_bad_rule_is_an_error(capsys, tmp_path):
    code, _, err = run(capsys, "compare", "--rules", "Adamm", "--out", str(tmp_path))
    assert code == 2 and "unknown optimiser rule 'Adamm'" in err


# ---- digits --------------------------------------------------------------------------------


def test_digits_reaches_90_percent_on_sklearn_digits(capsys):
    code, out, _ = run(capsys, "digits", "--epochs", "150", "--no-progress")
    assert code == 0 and "1000 training and 797 test images of 64 pixels" in out
    accuracy = float(re.search(r"^test accuracy ([\d.]+)$", out, re.M).group(1))
    assert accuracy >= 0.9
    assert re.search(r"^time [\d.]+ s", out, re.M)


def test_digits_reads_mnist_idx_files(capsys, tmp_path):
    rng = np.random.default_rng(0)
    for part, n in (("train", 40), ("t10k", 20)):
        datasets.write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz",
                           rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))  # fmt: skip
        datasets.write_idx(
            tmp_path / f"{part}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10
        )
    code, out, _ = run(capsys, "digits", "--mnist", str(tmp_path), "--epochs", "3", "--no-progress")
    assert code == 0 and "MNIST: 40 training and 20 test images of 784 pixels" in out
    assert "Dense(784 => 28, relu)" in out and "test accuracy" in out


def test_digits_conv_reaches_97_percent_on_sklearn_digits(capsys):
    """End to end: the CNN (Conv, BatchNorm, MaxPool, Dropout) trained by fx.train."""
    code, out, _ = run(capsys, "digits", "--conv", "--no-progress")
    assert code == 0 and "Conv((3, 3), 1 => 16, pad=1), BatchNorm(16, relu)" in out
    assert "20 shuffled batches per epoch; 20 epochs" in out
    accuracy = float(re.search(r"^test accuracy ([\d.]+)$", out, re.M).group(1))
    assert accuracy >= 0.97


def test_digits_conv_reads_mnist_idx_files(capsys, tmp_path):
    rng = np.random.default_rng(1)
    for part, n in (("train", 60), ("t10k", 10)):
        datasets.write_idx(tmp_path / f"{part}-images-idx3-ubyte",
                           rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))  # fmt: skip
        datasets.write_idx(
            tmp_path / f"{part}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10
        )
    argv = ("digits", "--conv", "--mnist", str(tmp_path), "--epochs", "2", "--no-progress")
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "MNIST: 60 training and 10 test images of 784 pixels" in out
    assert "Dense(1568 => 10)" in out and "test accuracy" in out


def test_digits_missing_mnist_folder(capsys, tmp_path):
    code, _, err = run(capsys, "digits", "--mnist", str(tmp_path / "nowhere"))
    assert code == 1 and "train-images-idx3-ubyte" in err


# ---- the module and the entry point --------------------------------------------------------


def test_python_dash_m_fluxjax_runs():
    out = subprocess.run([sys.executable, "-m", "fluxjax", "rules"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0 and "Adam" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "fluxjax", "demo", "--epochs", "x"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "usage:" in bad.stderr
