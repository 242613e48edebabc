"""Chapter 6 of the tutorial: optimisers. There is no default: one must be chosen.

``fx.rules_table()`` lists every rule (the tutorial listed the methods of ``apply!``);
``fx.lab.compare`` runs several of them from the same start on a problem and tabulates the
final loss, the steps to reach a threshold and the time.

    python examples/08_compare_optimisers.py [--steps N] [--out DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import os

import fluxjax as fx
from fluxjax import lab


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, help="steps per rule (1000; 20 with --tiny)")
    p.add_argument("--out", help="write loss and path plots into this folder")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    args = p.parse_args()
    args.steps = args.steps or (20 if args.tiny else 1000)
    return args


def main() -> None:
    args = options()
    print(f"{len(fx.rules())} optimiser rules; the first lines of fx.rules_table():")
    print("\n".join(fx.rules_table().splitlines()[:4]) + "\n...\n")
    runs = [
        ("seed", [fx.Descent(), fx.Momentum(), fx.Adam(), fx.Adam(0.01)]),
        (
            "rosenbrock",
            "Descent(0.001), Momentum(0.001), Nesterov(0.001), RMSProp(0.01), Adam(0.05)",
        ),
        ("saddle", None),  # the problem's own list of rules
    ]
    for problem, rules in runs:
        result = lab.compare(rules, problem, args.steps * (5 if problem == "seed" else 1))
        print(result.table() + "\n")
        if args.out:
            result.plot_losses(path=os.path.join(args.out, f"{problem}_loss.png"))
            if result.paths:
                result.plot_paths(path=os.path.join(args.out, f"{problem}_paths.png"))
    if args.out:
        print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
