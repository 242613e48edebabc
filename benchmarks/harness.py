"""The benchmark harness: every contender gets the same number of timed runs, interleaved
(ours, then each peer, R times), and the same best-of rule; each row prints our figure, the
peer's, the ratio, and whether the row meets its target."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("FLUXJAX_PEERS", HERE.parent.parent / "shared" / "bench"))


def timed(fn: Callable[[], None]) -> float:
    """Seconds one call of ``fn`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def peer_run(script: str, *args: object) -> Callable[[], dict[str, float]]:
    """A contender group: one run of a peer script, its report lines parsed as
    ``{name: figure}`` (µs/step or samples/s, as the script prints)."""

    def run() -> dict[str, float]:
        path = PEERS / script
        if not path.exists():
            print(f"  (peer script {path} not found: set FLUXJAX_PEERS)")
            return {}
        out = subprocess.run(
            [sys.executable, str(path), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        figures = {}
        for line in out.stdout.splitlines():
            m = re.match(r"(.+?)\s{2,}\s*([\d.]+) (us/step|samples/s)", line)
            if m:
                figures[m.group(1).strip()] = float(m.group(2))
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["?"])[-1]
            print(f"  (a peer stopped early: {last})")
        return figures

    return run


def contest(
    groups: list[Callable[[], dict[str, float]]], reps: int, lower_is_better: bool
) -> dict[str, float]:
    """Run every group ``reps`` times, interleaved; each contender keeps its best figure.
    A group returns ``{contender: figure}`` for one timed run of each of its contenders."""
    pick = min if lower_is_better else max
    seen: dict[str, list[float]] = {}
    for _ in range(reps):
        for g in groups:
            for name, v in g().items():
                seen.setdefault(name, []).append(v)
    counts = {len(v) for v in seen.values()}
    if len(counts) > 1:
        print(f"  (unequal tries: {sorted(counts)}; a contender failed in some runs)")
    return {k: pick(v) for k, v in seen.items()}


def table(
    rows: list[tuple[str, float | None, str, float | None, float | None]],
    unit: str,
    lower_is_better: bool,
) -> None:
    """Rows of (ours, our figure, peer, peer figure, target ratio). The ratio is ours/peer
    (for times: ≤ target is good; for throughputs: ≥ target is good)."""
    print(f"  {'fluxjax':46s} {unit:>11s}  {'peer':30s} {unit:>11s} {'ratio':>6s}  target")
    for name, ours, peer_name, peer, target in rows:
        if ours is None or peer is None:
            print(f"  {name:46s} {'-':>11s}  {peer_name:30s} {'(not run)':>11s}")
            continue
        ratio = ours / peer
        verdict = ""
        if target is not None:
            ok = ratio <= target if lower_is_better else ratio >= target
            sign = "≤" if lower_is_better else "≥"
            verdict = f"{sign} {target:g} " + (
                "met" if ok else f"MISSED by {abs(ratio - target) / target:.0%}"
            )
        print(f"  {name:46s} {ours:11.2f}  {peer_name:30s} {peer:11.2f} {ratio:6.2f}  {verdict}")
