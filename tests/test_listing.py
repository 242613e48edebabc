"""The rule listing: every rule class once, true signatures, aligned table."""

import importlib
import inspect

from fluxjax.optimise.base import Rule
from fluxjax.optimise.listing import RuleInfo, rules, rules_table

RULES_MODULE = importlib.import_module("fluxjax.optimise.rules")


def rule_classes():
    objs = (getattr(RULES_MODULE, n) for n in RULES_MODULE.__all__)
    return {o for o in objs if isinstance(o, type) and issubclass(o, Rule)}


def test_every_rule_class_listed_once():
    infos = rules()
    assert all(isinstance(i, RuleInfo) for i in infos)
    names = [i.name for i in infos]
    assert len(names) == len(set(names))
    assert {getattr(RULES_MODULE, n) for n in names} == rule_classes()
    assert len(infos) >= 25


def test_aliases_are_the_v012_names():
    aliases = {i.name: i.aliases for i in rules()}
    assert aliases["Adam"] == ("ADAM",)
    assert aliases["AdamW"] == ("ADAMW",)
    assert aliases["ClipGrad"] == ("ClipValue",)
    assert aliases["OptimiserChain"] == ("Optimiser",)
    assert aliases["Descent"] == () and aliases["AMSGrad"] == ()
    for info in rules():
        for a in info.aliases:
            assert getattr(RULES_MODULE, a) is getattr(RULES_MODULE, info.name)


def test_signature_builds_the_default_rule():
    namespace = {n: getattr(RULES_MODULE, n) for n in RULES_MODULE.__all__}
    checked = 0
    for info in rules():
        cls = namespace[info.name]
        assert info.signature.startswith(info.name + "(")
        assert info.formula == cls.formula
        params = inspect.signature(cls).parameters.values()
        if any(p.default is inspect.Parameter.empty for p in params):
            continue  # AccumGrad(n), OptimiserChain(*rules)
        built = eval(info.signature.replace("*, ", ""), namespace)  # noqa: S307
        assert repr(built) == repr(cls()), info.signature
        checked += 1
    assert checked >= 20
    sigs = {i.name: i.signature for i in rules()}
    assert sigs["Adam"] == "Adam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-08)"
    assert sigs["AccumGrad"] == "AccumGrad(n)"
    assert sigs["OptimiserChain"] == "OptimiserChain(*rules)"
    assert sigs["RMSProp"] == "RMSProp(eta=0.001, rho=0.9, epsilon=1e-08, *, centred=False)"


def test_table_is_aligned_and_complete():
    lines = rules_table().splitlines()
    infos = rules()
    assert len(lines) == len(infos) + 1
    assert lines[0].startswith("rule")
    col = lines[0].index("update")
    for line, info in zip(lines[1:], infos):
        assert line.startswith(info.signature)
        assert line[col:] == info.formula
        assert line[col - 2 : col] == "  "
    alias_col = lines[0].index("aliases")
    adam = next(line for line in lines if line.startswith("Adam("))
    assert adam[alias_col:].startswith("ADAM ")
