"""The README's Python examples run as written (with the long loops shortened)."""

import re
from pathlib import Path

import numpy as np

import fluxjax as fx

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the logging example writes train_log.csv and runs/
    code = blocks()
    assert len(code) >= 3
    scope: dict = {}
    for block in code:
        block = block.replace("range(10_000)", "range(200)").replace("epochs=40_000", "epochs=500")
        exec(compile(block, "README.md", "exec"), scope)
    # the quick start trained the tutorial's model: its loss fell from the start
    m, x, y = scope["m"], scope["x"], scope["y"]
    assert float(fx.mse(m(x), y)) < 1.0
    # the logging example left a CSV with the validation loss and a TensorBoard event file
    rows = (tmp_path / "train_log.csv").read_text().splitlines()
    assert "val_loss" in rows[0].split(",") and len(rows) >= 2
    assert list((tmp_path / "runs").glob("events.out.tfevents.*"))
    printed = capsys.readouterr().out.split()
    assert printed and float(printed[0]) > 0  # the throttled callback printed the loss
    # the custom rule is a working rule, chained and compiled
    opt = scope["opt"]
    w = fx.Dense(np.ones((1, 1), np.float32), False)
    h = fx.train(lambda x, y: fx.mse(w(x), y), fx.params(w), [(x, 2 * x)], opt, epochs=300)
    assert h.losses[-1] < h.losses[0] / 10


def test_readme_opens_with_the_two_commands():
    lines = [ln for ln in README.splitlines() if ln.startswith("pip install")]
    assert lines[:2] == [
        "pip install -e . && python -m fluxjax demo",
        "pip install -e '.[test]' && python -m pytest",
    ]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && python -m pytest" in ci
