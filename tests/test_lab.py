"""fx.lab: compare optimiser rules from the same start on the tutorial's problems."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fluxjax as fx
from fluxjax import lab

TWO_D = ["rosenbrock", "beale", "saddle", "noisy_quadratic"]


# ---- rules by name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Adam", fx.Adam()),
        ("adam", fx.Adam()),
        ("Descent(0.01)", fx.Descent(0.01)),
        ("Momentum(eta=0.001, rho=0.8)", fx.Momentum(0.001, 0.8)),
        ("Adam(0.01, beta=(0.8, 0.99))", fx.Adam(0.01, (0.8, 0.99))),
    ],
)
def test_parse_rule(text, expected):
    rule = lab.parse_rule(text)
    assert type(rule) is type(expected) and repr(rule) == repr(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Adamm", "unknown optimiser rule 'Adamm'"),
        ("Adam(eta=x)", "literal arguments"),
        ("Adam(", "cannot read the rule"),
        ("1 + 2", "cannot read the rule"),
        ("Chain", "unknown optimiser rule"),
    ],
)
def test_parse_rule_errors(text, message):
    with pytest.raises(ValueError, match=message):
        lab.parse_rule(text)


def test_parse_rules_labels_split_and_clashes():
    pairs = lab.parse_rules("Adam, Descent(0.01), Adam(beta=(0.8, 0.9))")
    assert [label for label, _ in pairs] == ["Adam", "Descent(0.01)", "Adam(beta=(0.8, 0.9))"]
    objects = lab.parse_rules([fx.Adam(), fx.Adam(0.01), fx.Descent()])
    assert [label for label, _ in objects] == ["Adam(eta=0.001)", "Adam(eta=0.01)", "Descent"]
    same = lab.parse_rules([fx.Adam(), fx.Adam()])
    assert len({label for label, _ in same}) == 2
    with pytest.raises(ValueError, match="at least one rule"):
        lab.parse_rules([])
    with pytest.raises(TypeError, match="rule object or a name"):
        lab.parse_rules([3])


# ---- the problems --------------------------------------------------------------------------


@pytest.mark.parametrize("name", TWO_D)
def test_two_d_problems_have_their_minimum_where_they_say(name):
    p = lab.PROBLEMS[name]
    base = (lambda q: lab.quadratic(q)) if p.noisy else p.f
    for m in p.minimum:
        at = np.asarray(m)
        value = float(base(at))
        for d in ([1e-3, 0], [0, 1e-3], [-1e-3, 0], [0, -1e-3]):
            assert float(base(at + np.asarray(d))) >= value
    assert p.xlim[0] < p.start[0] < p.xlim[1] and p.ylim[0] < p.start[1] < p.ylim[1]


@pytest.mark.parametrize("name", TWO_D)
def test_compare_two_d_paths_start_together_and_histories_match_f(name):
    result = lab.compare(["Descent(0.001)", "Adam(0.05)"], name, steps=12)
    assert set(result.paths) == {"Descent(0.001)", "Adam(0.05)"}
    for run in result.runs:
        assert run.path.shape == (13, 2)
        np.testing.assert_allclose(run.path[0], lab.PROBLEMS[name].start, rtol=1e-6)
        assert run.history.steps == list(range(13))
        exact = lab.quadratic if name == "noisy_quadratic" else lab.PROBLEMS[name].f
        np.testing.assert_allclose(run.history.losses, exact(run.path), rtol=1e-6)
        assert run.final_loss == pytest.approx(run.history.losses[-1])
        assert run.status == "ok" and run.wall_time > 0
    adam = result.runs[1].path
    assert not np.allclose(adam[-1], adam[0])  # it moved


def test_noisy_quadratic_draws_the_same_noise_for_every_rule():
    a = lab.compare(["Descent(0.05)", "Descent(0.05)"], "noisy_quadratic", steps=10, seed=3)
    np.testing.assert_array_equal(a.runs[0].path, a.runs[1].path)
    b = lab.compare(["Descent(0.05)"], "noisy_quadratic", steps=10, seed=4)
    assert not np.array_equal(a.runs[0].path, b.runs[0].path)


def test_rosenbrock_descent_matches_hand_written_gradient_descent():
    result = lab.compare(["Descent(0.001)"], "rosenbrock", steps=5)
    x, y = -1.2, 1.0
    for _ in range(5):
        gx = -2 * (1 - x) - 400 * x * (y - x**2)
        gy = 200 * (y - x**2)
        x, y = x - 0.001 * gx, y - 0.001 * gy
    np.testing.assert_allclose(result.runs[0].path[-1], [x, y], rtol=1e-5)


@pytest.mark.parametrize("name", ["seed", "fit2d"])
def test_compare_fits_lower_the_loss_from_one_start(name):
    result = lab.compare(["Adam(0.01)", "Descent"], name, steps=30)
    first = {run.history.losses[0] for run in result.runs}
    assert len(first) == 1  # the same initial parameters for both rules
    for run in result.runs:
        assert run.path is None and len(run.history.losses) == 31
        assert run.final_loss < run.history.losses[0]
        assert run.best_loss <= run.final_loss
    assert result.paths == {}


def test_fit2d_start_depends_on_the_seed_only():
    a = lab.compare(["Descent"], "fit2d", steps=1, seed=1).runs[0].history.losses[0]
    b = lab.compare(["Descent"], "fit2d", steps=1, seed=1).runs[0].history.losses[0]
    c = lab.compare(["Descent"], "fit2d", steps=1, seed=2).runs[0].history.losses[0]
    assert a == b != c


def test_threshold_steps_and_eta_override():
    result = lab.compare(["Adam"], "saddle", steps=60, eta=0.05, threshold=0.5)
    run = result.runs[0]
    assert run.label == "Adam η=0.05" and run.rule.eta == 0.05
    hit = run.steps_to_threshold
    assert hit is not None and run.history.losses[hit] <= 0.5 < run.history.losses[hit - 1]
    never = lab.compare(["Descent(1e-6)"], "saddle", steps=5, threshold=-1.0)
    assert never.runs[0].steps_to_threshold is None


def test_a_diverging_rule_is_reported_not_raised():
    result = lab.compare(["Descent(0.5)", "Adam(0.05)"], "rosenbrock", steps=40)
    bad, good = result.runs
    assert bad.diverged is not None and bad.status.startswith("diverged at step")
    assert math.isnan(bad.final_loss) and len(bad.path) == bad.diverged
    assert good.status == "ok"
    assert "diverged at step" in result.table()


def test_a_diverging_fit_is_reported():
    result = lab.compare(["Descent(1e6)"], "seed", steps=50)
    assert result.runs[0].diverged is not None and math.isnan(result.runs[0].final_loss)


def test_table_text_and_rows():
    result = lab.compare(["Descent(0.001)", "Momentum(0.001)"], "rosenbrock", steps=10)
    rows = result.rows()
    assert [r["rule"] for r in rows] == ["Descent(0.001)", "Momentum(0.001)"]
    assert set(rows[0]) == {
        "rule", "final_loss", "best_loss", "steps_to_threshold", "wall_time_s", "status"
    }  # fmt: skip
    lines = str(result).splitlines()
    assert lines[0].startswith("rosenbrock:") and "10 steps each" in lines[0]
    header, body = lines[1], lines[2:]
    assert header.split()[:3] == ["rule", "final", "loss"] and len(body) == 2
    # aligned: every column ends at the same place in every line
    for column in ("final loss", "best loss", "time [s]"):
        end = header.index(column) + len(column)
        for line in body:
            assert line[end - 1] != " " and (len(line) == end or line[end] == " ")


def test_compare_argument_errors():
    with pytest.raises(ValueError, match="unknown problem 'nope'; choose one of seed"):
        lab.compare(["Adam"], "nope", 5)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        lab.compare(["Adam"], "saddle", 0)
    with pytest.raises(ValueError, match="has no learning rate"):
        lab.compare(["AdaDelta"], "saddle", 3, eta=0.1)


def test_default_rules_of_every_problem_parse():
    for p in lab.PROBLEMS.values():
        assert len(lab.parse_rules(p.default_rules)) >= 3


def test_seed_model_is_the_tutorials():
    m = lab.seed_model()
    assert np.asarray(m[0].weight).ravel().tolist() == [5.0, -5.0, -5.0, -5.0]
    assert np.asarray(m[1].weight).ravel().tolist() == [5.0, -2.0, 5.0, -5.0]
    assert repr(lab.fit2d_model()).startswith("Chain(Dense(2 => 10, sigmoid), Dense(10 => 1))")
