"""fx.lr_find: the suggested η on the seed fit trains as well as a hand-picked one; the model,
its state and the rule are unchanged; the suggestion is the steepest point of a known curve."""

import numpy as np
import pytest
from conftest import seed_data, seed_model

import fluxjax as fx
from fluxjax.lrfind import _result


def loss(m, x, y):
    return fx.mse(m(x), y)


def test_the_suggestion_trains_the_seed_fit_like_a_hand_picked_eta():
    x, y = seed_data()
    m = seed_model()
    before = [np.asarray(a) for a in (m[0].weight, m[1].weight)]
    r = fx.lr_find(loss, m, [(x, y)], fx.Adam(), lo=1e-5, hi=10.0, steps=100)
    assert [
        np.array_equal(a, np.asarray(b)) for a, b in zip(before, (m[0].weight, m[1].weight))
    ] == [True, True]
    assert r.etas[0] == pytest.approx(1e-5) and r.etas[-1] == pytest.approx(10.0, rel=1e-5)

    def final(eta):
        mm = seed_model()
        h = fx.train(loss, mm, [(x, y)], fx.setup(fx.Adam(eta), mm), epochs=2000)
        return float(h.losses[-1])

    hand, bad = final(0.01), final(1e-3)  # the tutorial's Adam(0.01); too small an η
    assert final(r.suggestion) <= 1.5 * hand
    assert bad > 5 * hand  # the comparison can fail


def test_implicit_mode_leaves_the_model_and_rule_alone():
    x, y = seed_data()
    m = seed_model()
    ps = fx.params(m)
    opt = fx.Descent(0.1)
    w = np.asarray(m[0].weight)
    r = fx.lr_find(lambda x, y: loss(m, x, y), ps, [(x, y)], opt, lo=1e-4, hi=1.0, steps=20)
    assert np.array_equal(np.asarray(m[0].weight), w) and opt.eta == 0.1
    assert len(r.losses) == 20 and np.isfinite(r.losses).all()


def test_the_suggestion_is_the_steepest_point():
    etas = np.logspace(-6, 1, 141)
    losses = 1 - np.tanh(np.log(etas / 3e-3))  # falls fastest (in log η) at η = 3e-3
    r = _result(etas, losses, beta=0.0, diverge=1e9)
    assert r.suggestion == pytest.approx(3e-3, rel=0.13)  # within one grid step
    blown = np.concatenate([losses[:100], np.full(41, np.inf)])
    assert _result(etas, blown, 0.0, 4.0).stop <= 100


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="lo < hi"):
        fx.lr_find(loss, seed_model(), [seed_data()], fx.Adam(), lo=1.0, hi=0.1)
