"""Optimiser rules: properties written once over RULES, then golden trajectories.

Golden values come from Optax (after mapping the hyperparameters) or from float64 NumPy
references written straight from the formulas of flux-spec.md section 1 — never from
fluxjax's own output.
"""

import functools
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fluxjax.optimise.rules import (
    ADAM,
    ADAMW,
    EMA,
    NADAM,
    OADAM,
    RADAM,
    SWA,
    AccumGrad,
    AdaBelief,
    ADADelta,
    AdaDelta,
    ADAGrad,
    AdaGrad,
    Adam,
    AdaMax,
    AdamW,
    AMSGrad,
    ClipGlobalNorm,
    ClipGrad,
    ClipNorm,
    ClipValue,
    Descent,
    ExpDecay,
    InvDecay,
    Lion,
    LossScale,
    Momentum,
    NAdam,
    Nesterov,
    OAdam,
    Optimiser,
    OptimiserChain,
    RAdam,
    RMSProp,
    Rprop,
    SignDecay,
    SkipNonFinite,
    WeightDecay,
)
from fluxjax.optimise.schedules import Cosine

Chain = OptimiserChain

# Every rule class, at settings that make it converge on the problems below.
RULES = [
    Descent(0.5),
    Momentum(0.1, 0.9),
    Nesterov(0.1, 0.9),
    Rprop(0.01),
    RMSProp(0.02),
    RMSProp(0.02, centred=True),
    Adam(0.05),
    RAdam(0.05),
    AdaMax(0.05),
    OAdam(0.05),
    AdaGrad(0.5),
    AdaDelta(0.9, 1e-3),
    AMSGrad(0.05),
    NAdam(0.05),
    AdamW(0.05, lambda_=1e-3),
    AdamW(0.05, lambda_=1e-3, couple=False),
    AdaBelief(0.05),
    Lion(0.02, (0.9, 0.99)),
    Adam(eta=Cosine(0.05, 0.005, 200)),
    Chain(),
    Chain(WeightDecay(1e-3), Descent(0.5)),
    Chain(SignDecay(1e-3), Adam(0.05)),
    Chain(ClipGrad(0.5), Momentum(0.1)),
    Chain(ClipNorm(1.0), Adam(0.05)),
    Chain(ClipNorm(1.0, 1, throw=False), Descent(0.5)),
    Chain(ClipNorm(2.0, math.inf), Descent(0.5)),
    Chain(Descent(0.5), InvDecay(0.01)),
    ExpDecay(0.5, 0.5, 100, 0.1),
    Chain(SkipNonFinite(), Adam(0.05)),
    Chain(AccumGrad(2), Adam(0.05)),
    Chain(AccumGrad(3), WeightDecay(1e-3), OAdam(0.05), ClipGrad(1.0)),
    Chain(Chain(ClipGrad(1.0)), Chain(AccumGrad(2), Nesterov(0.1))),
    Chain(ClipGlobalNorm(1.0), Adam(0.05)),
    Chain(ClipNorm(1.0, over="all"), Descent(0.5)),
    Chain(Momentum(0.1, 0.9), EMA(0.9)),
    Chain(Adam(0.05), SWA(2, 2)),
    Chain(LossScale(), Adam(0.05)),
]
IDS = [repr(r) for r in RULES]
SHAPE = (3, 4)


def drive(rule, x0, grad, aux):
    """Run ``rule`` over ``aux`` (one entry per step): the loop every caller writes."""

    def body(carry, a):
        x, s, t = carry
        s, d = rule.resolve(t).apply(s, x, grad(x, a))
        gate = rule.gate(s)
        x = x - d if gate is None else jnp.where(gate, x - d, x)
        return (x, s, t + 1), x

    (x, s, _), xs = jax.lax.scan(body, (x0, rule.init(x0), jnp.asarray(1, jnp.int32)), aux)
    return x, s, xs


jdrive = jax.jit(drive, static_argnums=(0, 2))


def given(x, g):
    """The gradient is the pre-drawn one (golden trajectories)."""
    return g


def eager(rule, x0, grads):
    """The same loop op by op in Python, honouring the gate with a Python ``if``."""
    x, s = x0, rule.init(x0)
    for t, g in enumerate(grads, start=1):
        s, d = rule.resolve(t).apply(s, x, g)
        gate = rule.gate(s)
        if gate is None or bool(gate):
            x = x - d
    return x, s


# -- problems --------------------------------------------------------------------------
_rng = np.random.default_rng(20240611)
_Q = np.linalg.qr(_rng.normal(size=(12, 12)))[0]
A_QUAD = (_Q * _rng.uniform(0.2, 1.0, 12)) @ _Q.T  # symmetric, eigenvalues in [0.2, 1]
C_QUAD = _rng.normal(size=12)
X_LS = _rng.normal(size=(20, 3))
Y_LS = X_LS @ _rng.normal(size=(3, 4))
X0 = _rng.normal(size=SHAPE)


def quad_loss(x):
    r = x.reshape(-1) - C_QUAD
    return 0.5 * r @ A_QUAD @ r


def quad_grad(x, _):
    return (jnp.asarray(A_QUAD, x.dtype) @ (x.reshape(-1) - jnp.asarray(C_QUAD, x.dtype))).reshape(
        x.shape
    )


def ls_loss(w):
    return 0.5 * np.mean((X_LS @ w - Y_LS) ** 2)


def ls_grad(w, _):
    X, Y = jnp.asarray(X_LS, w.dtype), jnp.asarray(Y_LS, w.dtype)
    return X.T @ (X @ w - Y) / X.size * 3


def test_rules_list_covers_every_rule_class():
    module = importlib.import_module("fluxjax.optimise.rules")
    classes = {getattr(module, n) for n in module.__all__}
    seen = set()
    for r in RULES:
        seen |= {type(r)} | {type(c) for c in _members(r)}
    assert classes - seen == set()


def _members(rule):
    for r in getattr(rule, "rules", ()):
        yield r
        yield from _members(r)


# -- properties, written once ------------------------------------------------------------
@functools.cache
def solved(rule):
    """Both problems solved by ``rule`` in one compiled call (one compile per rule)."""

    def both(x0, w0):
        x, state, _ = drive(rule, x0, quad_grad, jnp.zeros(300))
        return x, state, drive(rule, w0, ls_grad, jnp.zeros(400))[0]

    x, state, w = jax.jit(both)(jnp.asarray(X0, jnp.float32), jnp.zeros((3, 4), jnp.float32))
    return np.asarray(x, np.float64), np.asarray(w, np.float64), x, state


# the rules of rules.py that keep state: each names it, and shows its own constructor
NAMED_STATE = [
    r
    for r in RULES
    if type(r).__module__ == "fluxjax.optimise.rules"
    and not r.has_schedule()
    and r.init(jnp.zeros(2)) != ()
]


@pytest.mark.parametrize("rule", NAMED_STATE, ids=repr)
def test_state_is_named_and_its_constructor_is_its_own(rule):
    x = jnp.ones(SHAPE)
    state = rule.init(x)
    assert (
        type(state).__name__ == type(rule).__name__ + "State" or type(state).__name__ == "AdamState"
    )
    new, _ = rule.apply(state, x, x)
    assert type(new) is type(state) and new._fields == state._fields
    assert "__init__" in vars(type(rule))  # not borrowed from another rule


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_decreases_a_convex_quadratic(rule):
    start, end = quad_loss(X0), quad_loss(solved(rule)[0])
    assert end < 0.02 * start, (start, end)


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_fits_least_squares(rule):
    start, end = ls_loss(np.zeros((3, 4))), ls_loss(solved(rule)[1])
    assert end < 0.01 * start, (start, end)


def _check_state(state, x):
    for leaf in jax.tree.leaves(state):
        assert isinstance(leaf, jax.Array)
        assert leaf.shape in (x.shape, ()), leaf.shape
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == x.dtype
        else:
            assert leaf.dtype in (jnp.int32, jnp.bool_) and leaf.shape == ()


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_float32_in_float32_out(rule):
    x0 = jnp.asarray(X0, jnp.float32)
    _, _, x, s = solved(rule)  # 300 compiled steps on the quadratic
    assert x.dtype == jnp.float32 and x.shape == SHAPE
    _check_state(rule.init(x0), x0)
    _check_state(s, x0)


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_float64_preserved(rule):
    with jax.enable_x64(True):
        x0 = jnp.asarray(X0, jnp.float64)
        grads = [quad_grad(x0, None) * k for k in (1.0, -0.5, 2.0)]
        x, s = eager(rule, x0, grads)
        assert x.dtype == jnp.float64
        _check_state(s, x0)


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_identical_under_jit(rule):
    x0 = jnp.asarray(X0, jnp.float32)
    G = jnp.asarray(_rng_for("jit").normal(size=(7, *SHAPE)), jnp.float32)
    x_eager, s_eager = eager(rule, x0, list(G))
    x_jit, s_jit, _ = jdrive(rule, x0, given, G)
    np.testing.assert_allclose(x_jit, x_eager, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(s_jit), jax.tree.leaves(s_eager)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _rng_for(name):
    return np.random.default_rng(sum(map(ord, name)))


def flat(rule):
    """A nested chain is the chain of its members' members."""
    if isinstance(rule, OptimiserChain):
        return [m for r in rule.rules for m in flat(r)]
    return [rule]


def by_hand(chain, x0, grads):
    """A chain applied as its members by hand: Python loops and ``if`` on the gates."""
    members = flat(chain)
    x, states = x0, [r.init(x0) for r in members]
    for t, g in enumerate(grads, start=1):
        d, stepped = g, True
        for i, r in enumerate(members):
            r = r.resolve(t)
            s, d = r.apply(states[i], x, d)
            states[i] = s
            gate = r.gate(s)
            if gate is not None and not bool(gate):
                stepped = False
                break
        if stepped:
            x = x - d
    return x


CHAINS = [r for r in RULES if isinstance(r, OptimiserChain)]


@pytest.mark.parametrize("chain", CHAINS, ids=[repr(c) for c in CHAINS])
def test_chain_equals_members_in_sequence(chain):
    x0 = jnp.asarray(X0, jnp.float32)
    G = jnp.asarray(_rng_for("chain").normal(size=(7, *SHAPE)), jnp.float32)
    x_chain, _, _ = jdrive(chain, x0, given, G)
    np.testing.assert_allclose(x_chain, by_hand(chain, x0, list(G)), rtol=1e-5, atol=1e-6)


def test_empty_chain_is_the_identity_step():
    x, g = jnp.ones(3), jnp.array([1.0, -2.0, 3.0])
    state, d = Chain().apply(Chain().init(x), x, g)
    assert state == () and Chain().gate(state) is None
    np.testing.assert_array_equal(d, g)


def test_closed_gate_keeps_later_state_and_param():
    rule = Chain(AccumGrad(3), Adam(0.1))
    x = jnp.ones(2)
    s0 = rule.init(x)
    s1, d = rule.apply(s0, x, jnp.array([1.0, 2.0]))
    assert not bool(rule.gate(s1))
    np.testing.assert_array_equal(d, 0.0)
    for a, b in zip(jax.tree.leaves(s1[1]), jax.tree.leaves(s0[1])):
        np.testing.assert_array_equal(a, b)  # Adam did not advance (βt included)
    s2, _ = rule.apply(s1, x, jnp.array([3.0, 4.0]))
    s3, d = rule.apply(s2, x, jnp.array([5.0, 6.0]))
    assert bool(rule.gate(s3))
    np.testing.assert_allclose(d, 0.1 * np.sign([3.0, 4.0]), rtol=1e-6)  # Adam's 1st step
    np.testing.assert_allclose(s3[1][2][0], 0.81, rtol=1e-6)  # βt advanced once


def test_skip_nonfinite_skips_bad_batches():
    G = _rng_for("skip").normal(size=(6, *SHAPE))
    bad = G.copy()
    bad[2, 1, 1], bad[4, 0, 0] = np.nan, np.inf
    x0 = jnp.asarray(X0, jnp.float32)
    skipped, s, _ = jdrive(Chain(SkipNonFinite(), Adam(0.1)), x0, given, jnp.asarray(bad))
    clean, _, _ = jdrive(Adam(0.1), x0, given, jnp.asarray(G[[0, 1, 3, 5]]))
    np.testing.assert_allclose(skipped, clean, rtol=1e-6)
    assert np.isfinite(np.asarray(jax.tree.leaves(s[1])[0])).all()


def test_clipnorm_reports_nonfinite_norm_through_error():
    rule, x = ClipNorm(1.0), jnp.ones(3)
    s, d = rule.apply(rule.init(x), x, jnp.array([1.0, np.inf, 0.0]))
    assert bool(rule.error(s))
    s, d = rule.apply(s, x, jnp.array([3.0, 4.0, 0.0]))
    assert not bool(rule.error(s))
    np.testing.assert_allclose(d, [0.6, 0.8, 0.0], rtol=1e-6)
    assert ClipNorm(throw=False).error(ClipNorm(throw=False).init(x)) is None
    chain = Chain(AccumGrad(2), ClipNorm(1.0))
    s, _ = chain.apply(chain.init(x), x, jnp.array([np.nan, 0.0, 0.0]))
    assert not bool(chain.error(s))  # AccumGrad is still gathering: ClipNorm did not run
    s, _ = chain.apply(s, x, jnp.zeros(3))
    assert bool(chain.error(s))
    stale = (s[0][0], jnp.asarray(2, jnp.int32)), s[1]  # gate closed, ClipNorm's flag stale
    assert not bool(chain.gate(stale)) and not bool(chain.error(stale))


def test_error_and_gate_default_to_none():
    x = jnp.ones(2)
    assert Adam().gate(Adam().init(x)) is None and Adam().error(Adam().init(x)) is None
    assert Chain(Adam(), ClipGrad()).gate(Chain(Adam(), ClipGrad()).init(x)) is None


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: Descent(-0.1), "eta"),
        (lambda: Momentum(0.1, 1.5), "rho"),
        (lambda: Nesterov(-1.0), "eta"),
        (lambda: RMSProp(epsilon=-1e-8), "epsilon"),
        (lambda: RMSProp(rho=-0.1), "rho"),
        (lambda: Adam(beta=(0.9, 1.0)), "beta"),
        (lambda: Adam(beta=(-0.1, 0.9)), "beta"),
        (lambda: RAdam(-0.1), "eta"),
        (lambda: AdaMax(epsilon=-1.0), "epsilon"),
        (lambda: OAdam(beta=(1.0, 0.9)), "beta"),
        (lambda: AdaGrad(-0.1), "eta"),
        (lambda: AdaDelta(1.1), "rho"),
        (lambda: AMSGrad(beta=(0.9, 2.0)), "beta"),
        (lambda: NAdam(epsilon=-1.0), "epsilon"),
        (lambda: AdamW(lambda_=-1.0), "lambda_"),
        (lambda: AdaBelief(-1.0), "eta"),
        (lambda: Lion(beta=(0.9, 1.1)), "beta"),
        (lambda: Rprop(ell=(0.0, 1.2)), "ell"),
        (lambda: Rprop(gamma=(-1.0, 50.0)), "gamma"),
        (lambda: WeightDecay(-1e-3), "lambda_"),
        (lambda: SignDecay(-1e-3), "lambda_"),
        (lambda: ClipGrad(-1.0), "delta"),
        (lambda: ClipNorm(-1.0), "omega"),
        (lambda: ClipNorm(1.0, 0), "p"),
        (lambda: InvDecay(-1.0), "gamma"),
        (lambda: ExpDecay(decay_step=0), "decay_step"),
        (lambda: ExpDecay(start=-1), "start"),
        (lambda: ExpDecay(clip=-1.0), "clip"),
        (lambda: AccumGrad(0), "n"),
        (lambda: AccumGrad(2.5), "n"),
    ],
)
def test_construction_errors_name_the_field(make, field):
    with pytest.raises(ValueError, match=rf"(^|\W){field}(\W|$)"):
        make()


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: Adam(beta=0.9), "beta"),
        (lambda: RMSProp(centred="yes"), "centred"),
        (lambda: AdamW(couple=1), "couple"),
        (lambda: AccumGrad(lambda t: 2), "n"),
        (lambda: ClipNorm(throw=None), "throw"),
        (lambda: Adam(eta="fast"), "eta"),
    ],
)
def test_construction_type_errors_name_the_field(make, field):
    with pytest.raises(TypeError, match=rf"(^|\W){field}(\W|$)"):
        make()


def test_chain_refuses_non_rules():
    with pytest.raises(TypeError, match="OptimiserChain"):
        Chain(Adam(), 0.1)


def test_positional_and_keyword_constructors_agree():
    a = AdamW(0.01, (0.8, 0.99), 0.1, 1e-6, couple=False)
    b = AdamW(eta=0.01, beta=(0.8, 0.99), lambda_=0.1, epsilon=1e-6, couple=False)
    assert a.hyperparameters() == b.hyperparameters()
    assert repr(a) == "AdamW(eta=0.01, beta=(0.8, 0.99), lambda_=0.1, epsilon=1e-06, couple=False)"
    assert RMSProp(centered=True).centred is True
    assert repr(ClipNorm()) == "ClipNorm(omega=10.0, p=2, throw=True, over='array')"


def test_v012_names_are_the_same_classes():
    pairs = [(ADAM, Adam), (RADAM, RAdam), (NADAM, NAdam), (ADAMW, AdamW), (ADAGrad, AdaGrad)]
    pairs += [(ADADelta, AdaDelta), (OADAM, OAdam), (ClipValue, ClipGrad)]
    pairs += [(Optimiser, OptimiserChain)]
    for old, new in pairs:
        assert old is new


def test_chain_indexing_and_repr():
    a, b, c = ClipGrad(1.0), Adam(), WeightDecay()
    chain = Optimiser(a, b, c)
    assert chain[0] is a and list(chain) == [a, b, c]
    assert chain[1:].rules == (b, c)
    assert repr(Chain(Descent(0.5))) == "OptimiserChain(Descent(eta=0.5))"
    assert chain.children() == (a, b, c)


def test_every_rule_has_a_formula_and_docstring():
    for r in RULES:
        for rule in (r, *_members(r)):
            cls = type(rule)
            assert isinstance(cls.formula, str) and cls.formula
            assert cls.__doc__ and ">>>" in cls.__doc__


# -- golden trajectories: Optax -----------------------------------------------------------
T = 50
G_SEQ = np.random.default_rng(7).normal(size=(T, *SHAPE))
X_START = np.random.default_rng(8).normal(size=SHAPE)

# (our rule, a function making the Optax optimiser it maps to; made under x64)
OPTAX = [
    (Descent(0.1), lambda: optax.sgd(0.1)),
    # Momentum's v = +η·(Optax's trace); Nesterov's v = −η·(Optax's trace).
    (Momentum(0.05, 0.8), lambda: optax.sgd(0.05, momentum=0.8)),
    (Nesterov(0.05, 0.8), lambda: optax.sgd(0.05, momentum=0.8, nesterov=True)),
    # ϵ outside the root, as Flux.
    (RMSProp(0.01, 0.8, 1e-3), lambda: optax.rmsprop(0.01, 0.8, 1e-3, eps_in_sqrt=False)),
    (
        RMSProp(0.01, 0.8, 1e-3, centred=True),
        lambda: optax.rmsprop(0.01, 0.8, 1e-3, eps_in_sqrt=False, centered=True),
    ),
    (Adam(0.05, (0.8, 0.95), 1e-3), lambda: optax.adam(0.05, 0.8, 0.95, eps=1e-3)),
    # Flux tests ρt > 4; Optax tests ρt >= threshold.
    (RAdam(0.05, (0.8, 0.99), 1e-3), lambda: optax.radam(0.05, 0.8, 0.99, eps=1e-3, threshold=4.0)),
    # Optax adds ϵ inside the max (u = max(β2·u, |g| + ϵ)): compare at ϵ = 0.
    (AdaMax(0.05, (0.8, 0.95), 0.0), lambda: optax.adamax(0.05, 0.8, 0.95, eps=0.0)),
    # Optax adds ϵ inside the root and starts acc at its own value: compare at ϵ = 0.
    (AdaGrad(0.3, 0.0), lambda: optax.adagrad(0.3, initial_accumulator_value=0.0, eps=0.0)),
    (AdaDelta(0.8, 1e-3), lambda: optax.adadelta(1.0, 0.8, 1e-3)),
    # Flux's AMSGrad: no bias correction, state starts at ϵ (Optax: zeros): compare at ϵ = 0.
    (
        AMSGrad(0.05, (0.8, 0.95), 0.0),
        lambda: optax.amsgrad(
            0.05, 0.8, 0.95, eps=0.0, bias_correction_mu=False, bias_correction_nu=False
        ),
    ),
    (
        AdamW(0.05, (0.8, 0.95), 0.1, 1e-3),
        lambda: optax.adamw(0.05, 0.8, 0.95, 1e-3, weight_decay=0.1),
    ),
    # ϵ inside s is Optax's eps_root.
    (AdaBelief(0.05, (0.8, 0.95), 1e-3), lambda: optax.adabelief(0.05, 0.8, 0.95, 1e-3, 1e-3)),
    (Lion(0.05, (0.8, 0.95)), lambda: optax.lion(0.05, 0.8, 0.95, weight_decay=0.0)),
    (
        Chain(WeightDecay(0.1), Descent(0.1)),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.1)),
    ),
    (
        Chain(ClipGrad(0.5), Adam(0.05)),
        lambda: optax.chain(optax.clip(0.5), optax.adam(0.05)),
    ),
    (
        Chain(ClipNorm(2.0), Descent(0.1)),
        lambda: optax.chain(optax.clip_by_global_norm(2.0), optax.sgd(0.1)),
    ),
    (
        Chain(AccumGrad(3), Adam(0.05)),
        lambda: optax.MultiSteps(optax.adam(0.05), 3, accumulator_dtype=jnp.float64),
    ),
]


def optax_run(tx, x0, G):
    def body(carry, g):
        x, s = carry
        u, s = tx.update(g, s, x)
        x = optax.apply_updates(x, u)
        return (x, s), x

    return jax.lax.scan(body, (x0, tx.init(x0)), G)[1]


def tol32(rule) -> float:
    """The float32 tolerance of a trajectory against float64: a small multiple of the error
    measured (at most 9e-7 relative to 1 + |x| for every row), except a tiny ε (below
    float32's resolution near 1), which amplifies rounding (measured 7.2e-6 for RAdam's
    default ε = 1e-8)."""
    eps = getattr(rule, "epsilon", None)
    return 3e-5 if isinstance(eps, float) and 0 < eps < 1e-6 else 4e-6


@pytest.mark.parametrize("rule, tx", OPTAX, ids=[repr(r) for r, _ in OPTAX])
def test_matches_optax(rule, tx):
    with jax.enable_x64(True):
        x0, G = jnp.asarray(X_START), jnp.asarray(G_SEQ)
        want = np.asarray(jax.jit(optax_run, static_argnums=0)(tx(), x0, G))
        got = np.asarray(jdrive(rule, x0, given, G)[2])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
    got32 = jdrive(rule, jnp.asarray(X_START, jnp.float32), given, jnp.asarray(G_SEQ, jnp.float32))[
        2
    ]
    t32 = tol32(rule)
    np.testing.assert_allclose(got32, want, rtol=t32, atol=t32)


# -- golden trajectories: formula references (float64 NumPy, flux-spec.md section 1) ------


def loop(init, step, x0=X_START, G=G_SEQ):
    x, s, xs = x0.copy(), init(x0), []
    for g in G:
        s, d = step(s, x, g)
        x = x - d
        xs.append(x)
    return np.stack(xs)


def zeros(*names):
    return lambda x: tuple(np.zeros_like(x) for _ in names)


def ref_momentum(eta, rho):
    return zeros("v"), lambda s, x, g: ((rho * s[0] + eta * g,), rho * s[0] + eta * g)


def ref_nesterov(eta, rho):
    def step(s, x, g):
        (v,) = s
        return (rho * v - eta * g,), (1 + rho) * eta * g - rho**2 * v

    return zeros("v"), step


def ref_rmsprop(eta, rho, eps, centred):
    def step(s, x, g):
        q, lin = rho * s[0] + (1 - rho) * g**2, rho * s[1] + (1 - rho) * g
        lin = lin if centred else 0 * lin
        return (q, lin), eta * g / (np.sqrt(q - lin**2) + eps)

    return zeros("q", "lin"), step


def _adam_like(kind, eta, b1, b2, eps):
    """Adam, AdaMax, OAdam, NAdam, RAdam and AdaBelief from flux-spec 1.2 / 1.5 (powers βᵗ)."""

    def init(x):
        return np.zeros_like(x), np.zeros_like(x), 0, np.zeros_like(x)

    def step(s, x, g):
        m, v, t, prev = s
        t += 1
        m = b1 * m + (1 - b1) * g
        if kind == "adamax":
            v = np.maximum(b2 * v, np.abs(g))
            return (m, v, t, prev), (eta / (1 - b1**t)) * m / (v + eps)
        if kind == "adabelief":
            v = b2 * v + (1 - b2) * (g - m) ** 2 + eps
        else:
            v = b2 * v + (1 - b2) * g**2
        mhat, vhat = m / (1 - b1**t), v / (1 - b2**t)
        adam = eta * mhat / (np.sqrt(vhat) + eps)
        if kind in ("adam", "adabelief"):
            return (m, v, t, prev), adam
        if kind == "oadam":
            return (m, v, t, adam), 2 * adam - prev
        if kind == "nadam":
            num = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
            return (m, v, t, prev), eta * num / (np.sqrt(b2 * v / (1 - b2**t)) + eps)
        rinf = 2 / (1 - b2) - 1  # radam
        rho = rinf - 2 * t * b2**t / (1 - b2**t)
        if rho > 4:
            r = math.sqrt((rho - 4) * (rho - 2) * rinf / ((rinf - 4) * (rinf - 2) * rho))
            return (m, v, t, prev), r * adam
        return (m, v, t, prev), eta * mhat

    return init, step


def ref_adagrad(eta, eps):
    def step(s, x, g):
        acc = s[0] + g**2
        return (acc,), eta * g / (np.sqrt(acc) + eps)

    return (lambda x: (np.full_like(x, eps),)), step


def ref_adadelta(rho, eps):
    def step(s, x, g):
        acc, dacc = s
        acc = rho * acc + (1 - rho) * g**2
        d = g * np.sqrt(dacc + eps) / np.sqrt(acc + eps)
        return (acc, rho * dacc + (1 - rho) * d**2), d

    return zeros("acc", "dacc"), step


def ref_amsgrad(eta, b1, b2, eps):
    def step(s, x, g):
        m, v, vhat = s
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        vhat = np.maximum(vhat, v)
        return (m, v, vhat), eta * m / (np.sqrt(vhat) + eps)

    return (lambda x: (np.full_like(x, eps),) * 3), step


def ref_adamw(eta, b1, b2, lam, eps, couple):
    init, adam = _adam_like("adam", 1.0, b1, b2, eps)

    def step(s, x, g):
        s, a = adam(s, x, g)
        return s, eta * (a + lam * x) if couple else eta * a + lam * x

    return init, step


def ref_lion(eta, b1, b2):
    def step(s, x, g):
        (m,) = s
        return (b2 * m + (1 - b2) * g,), eta * np.sign(b1 * m + (1 - b1) * g)

    return zeros("m"), step


def ref_rprop(eta, l1, l2, gmin, gmax):
    def step(s, x, g):
        gp, size = s
        gp, size = gp.copy(), size.copy()
        for i in np.ndindex(g.shape):  # element by element, as the spec's prose
            p = gp[i] * g[i]
            if p > 0:
                size[i] = min(size[i] * l2, gmax)
            elif p < 0:
                size[i] = max(size[i] * l1, gmin)
            gp[i] = 0.0 if p < 0 else g[i]
        return (gp, size), size * np.sign(gp)

    return (lambda x: (np.zeros_like(x), np.full_like(x, eta))), step


def ref_chain(*refs):
    def init(x):
        return tuple(r[0](x) for r in refs)

    def step(s, x, g):
        out = []
        for (_, st), si in zip(refs, s):
            si, g = st(si, x, g)
            out.append(si)
        return tuple(out), g

    return init, step


def ref_descent(eta):
    return (lambda x: ()), (lambda s, x, g: ((), eta * g))


def ref_signdecay(lam):
    return (lambda x: ()), (lambda s, x, g: ((), g + lam * np.sign(x)))


def ref_clipnorm(omega, p):
    def step(s, x, g):
        n = np.max(np.abs(g)) if p == math.inf else np.sum(np.abs(g) ** p) ** (1 / p)
        return s, g * min(omega / n, 1.0)

    return (lambda x: ()), step


def ref_invdecay(gamma):
    return (lambda x: (1,)), (lambda s, x, g: ((s[0] + 1,), g / (1 + gamma * s[0])))


def ref_accum_descent(n, eta):
    def step(s, x, g):
        acc, c = s
        acc = g / n if c == 1 else acc + g / n
        if c == n:
            return (acc, 1), eta * acc
        return (acc, c + 1), 0 * g

    return (lambda x: (np.zeros_like(x), 1)), step


REFERENCES = [
    (Momentum(0.05, 0.8), ref_momentum(0.05, 0.8)),
    (Nesterov(0.05, 0.8), ref_nesterov(0.05, 0.8)),
    (RMSProp(0.01, 0.8, 1e-3, centred=True), ref_rmsprop(0.01, 0.8, 1e-3, True)),
    (RMSProp(0.01, 0.8, 1e-3), ref_rmsprop(0.01, 0.8, 1e-3, False)),
    (Adam(0.05, (0.8, 0.95), 1e-3), _adam_like("adam", 0.05, 0.8, 0.95, 1e-3)),
    (RAdam(0.05, (0.8, 0.99), 1e-3), _adam_like("radam", 0.05, 0.8, 0.99, 1e-3)),
    (RAdam(0.05), _adam_like("radam", 0.05, 0.9, 0.999, 1e-8)),
    (AdaMax(0.05, (0.8, 0.95), 1e-2), _adam_like("adamax", 0.05, 0.8, 0.95, 1e-2)),
    (OAdam(0.05, (0.5, 0.9), 1e-3), _adam_like("oadam", 0.05, 0.5, 0.9, 1e-3)),
    (NAdam(0.05, (0.8, 0.95), 1e-3), _adam_like("nadam", 0.05, 0.8, 0.95, 1e-3)),
    (AdaBelief(0.05, (0.8, 0.95), 1e-3), _adam_like("adabelief", 0.05, 0.8, 0.95, 1e-3)),
    (AdaGrad(0.3, 1e-2), ref_adagrad(0.3, 1e-2)),
    (AdaDelta(0.8, 1e-3), ref_adadelta(0.8, 1e-3)),
    (AMSGrad(0.05, (0.8, 0.95), 1e-3), ref_amsgrad(0.05, 0.8, 0.95, 1e-3)),
    (AdamW(0.05, (0.8, 0.95), 0.1, 1e-3), ref_adamw(0.05, 0.8, 0.95, 0.1, 1e-3, True)),
    (
        AdamW(0.05, (0.8, 0.95), 0.1, 1e-3, couple=False),
        ref_adamw(0.05, 0.8, 0.95, 0.1, 1e-3, False),
    ),
    (Lion(0.05, (0.8, 0.95)), ref_lion(0.05, 0.8, 0.95)),
    (Rprop(0.05, (0.4, 1.3), (1e-3, 0.2)), ref_rprop(0.05, 0.4, 1.3, 1e-3, 0.2)),
    (Chain(SignDecay(0.1), Descent(0.1)), ref_chain(ref_signdecay(0.1), ref_descent(0.1))),
    (Chain(ClipNorm(2.0, 1), Descent(0.1)), ref_chain(ref_clipnorm(2.0, 1), ref_descent(0.1))),
    (Chain(ClipNorm(1.0, 3), Descent(0.1)), ref_chain(ref_clipnorm(1.0, 3), ref_descent(0.1))),
    (
        Chain(ClipNorm(1.0, math.inf), Descent(0.1)),
        ref_chain(ref_clipnorm(1.0, math.inf), ref_descent(0.1)),
    ),
    (Chain(Descent(0.1), InvDecay(0.05)), ref_chain(ref_descent(0.1), ref_invdecay(0.05))),
    (Chain(AccumGrad(3), Descent(0.1)), ref_accum_descent(3, 0.1)),
]


@pytest.mark.parametrize("rule, ref", REFERENCES, ids=[repr(r) for r, _ in REFERENCES])
def test_matches_formula_reference(rule, ref):
    want = loop(*ref)
    with jax.enable_x64(True):
        got = np.asarray(jdrive(rule, jnp.asarray(X_START), given, jnp.asarray(G_SEQ))[2])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
    got32 = jdrive(rule, jnp.asarray(X_START, jnp.float32), given, jnp.asarray(G_SEQ, jnp.float32))[
        2
    ]
    t32 = tol32(rule)
    np.testing.assert_allclose(got32, want, rtol=t32, atol=t32)


def flux_expdecay(arrays, grads, eta, decay, step, clip, start):
    """Flux v0.12.9's ExpDecay on several arrays updated together: one shared η, per-array
    counters, and the "exactly one counter at a multiple of step" test."""
    current = [0] * len(arrays)
    xs = [a.copy() for a in arrays]
    for gs in grads:
        for i, g in enumerate(gs):
            current[i] += 1
            n = current[i]
            hits = sum(1 for c in current if c > start and c % step == 0)
            if n > start and n % step == 0 and hits == 1:
                eta = max(eta * decay, clip)
            xs[i] = xs[i] - eta * g
    return xs


def test_expdecay_matches_flux_v012_when_arrays_update_together():
    hp = (0.5, 0.5, 7, 0.01, 10)  # decays at n = 14, 21, ...; floored at 0.01 from n = 42
    rule = ExpDecay(*hp)
    G2 = np.random.default_rng(9).normal(size=(T, 4))
    want = flux_expdecay([X_START, X_START[0]], list(zip(G_SEQ, G2)), *hp)
    with jax.enable_x64(True):
        for x0, G, w in ((X_START, G_SEQ, want[0]), (X_START[0], G2, want[1])):
            got, s, _ = jdrive(rule, jnp.asarray(x0), given, jnp.asarray(G))
            np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(s[0], 0.01)
    got32, _, _ = jdrive(
        rule, jnp.asarray(X_START, jnp.float32), given, jnp.asarray(G_SEQ, jnp.float32)
    )
    np.testing.assert_allclose(got32, want[0], rtol=1e-5, atol=1e-5)


def test_lion_follows_the_paper_not_optimisers_jl():
    """Optimisers.jl's code: m ← β2·g + (1−β2)·m, d = η·sign((β2−β1)·g + β1·m)."""
    b1, b2 = 0.9, 0.99

    def jl_step(s, x, g):
        m = b2 * g + (1 - b2) * s[0]
        return (m,), 0.1 * np.sign((b2 - b1) * g + b1 * m)

    jl = loop(zeros("m"), jl_step)
    ours = np.asarray(
        jdrive(Lion(0.1, (b1, b2)), jnp.asarray(X_START), given, jnp.asarray(G_SEQ))[2]
    )
    assert not np.allclose(ours, jl)
    np.testing.assert_allclose(ours, loop(*ref_lion(0.1, b1, b2)), rtol=1e-5, atol=1e-6)


def test_adamw_couple_false_is_flux_v012_adamw():
    """Flux v0.12's ADAMW(η, β, decay) = Optimiser(ADAM(η, β), WeightDecay(decay))."""
    x0, G = jnp.asarray(X_START, jnp.float32), jnp.asarray(G_SEQ, jnp.float32)
    old = jdrive(Chain(Adam(0.05), WeightDecay(0.1)), x0, given, G)[0]
    new = jdrive(ADAMW(0.05, (0.9, 0.999), 0.1, couple=False), x0, given, G)[0]
    np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-6)


def test_float16_epsilon_floor():
    x = jnp.zeros(2, jnp.float16)
    g = jnp.array([0.0, 1.0], jnp.float16)
    _, d = AdaGrad(0.1, 1e-8).apply(AdaGrad(0.1, 1e-8).init(x), x, g)
    assert d.dtype == jnp.dtype("float16") and np.isfinite(np.asarray(d)).all()
