"""A character-level transformer: an embedding, two attention blocks (MultiHeadAttention
with a causal mask, LayerNorm, Dropout, a feed-forward Dense pair), trained on the prose of
the Portuguese tutorial that fluxjax ships (``datasets.tutorial_text()``). It prints the
validation loss as it falls and a sample of generated text.

    python examples/14_transformer.py [--epochs N] [--tiny]
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

import fluxjax as fx
from fluxjax import datasets


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, help="epochs (20; 2 with --tiny)")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    args = p.parse_args()
    args.epochs = args.epochs or (2 if args.tiny else 20)
    return args


class Block(fx.Module):
    """Pre-norm transformer block: ``x + drop(attn(ln₁(x)))``, then ``x + drop(ff(ln₂(x)))``."""

    def __init__(self, d: int, nheads: int, p: float) -> None:
        self.ln1, self.ln2 = fx.LayerNorm(d), fx.LayerNorm(d)
        self.attn = fx.MultiHeadAttention(d, nheads=nheads)
        self.ff = fx.Chain(fx.Dense(d, 4 * d, fx.gelu), fx.Dense(4 * d, d))
        self.drop = fx.Dropout(p)

    def __call__(self, x):
        y, _ = self.attn(self.ln1(x), mask=fx.make_causal_mask(x))
        x = x + self.drop(y)
        return x + self.drop(self.ff(self.ln2(x)))


class CharTransformer(fx.Module):
    """Token embedding + learned positions → blocks → LayerNorm → Dense to the vocabulary."""

    def __init__(self, vocab: int, d: int, ctx: int, nheads: int = 4, p: float = 0.1) -> None:
        self.tok = fx.Embedding(vocab, d)
        self.pos = fx.randn32(ctx, d) * 0.1
        self.blocks = [Block(d, nheads, p), Block(d, nheads, p)]
        self.ln = fx.LayerNorm(d)
        self.head = fx.Dense(d, vocab)

    def __call__(self, idx):
        x = self.tok(idx) + self.pos[: idx.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


def windows(ids: np.ndarray, ctx: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-character targets, ``(n, ctx)`` each, from windows of ``ids``."""
    starts = np.arange(0, len(ids) - ctx - 1, stride)
    x = np.stack([ids[s : s + ctx] for s in starts])
    return x, np.stack([ids[s + 1 : s + ctx + 1] for s in starts])


def loss(m, x, y):
    return fx.logitcrossentropy(m(x), jax.nn.one_hot(y, m.head.weight.shape[0]))


def generate(m, start: np.ndarray, n: int, ctx: int, key) -> list[int]:
    """Sample ``n`` characters after ``start`` (temperature 0.8), one compiled call each."""
    step = jax.jit(lambda m, x, k, i: jax.random.categorical(k, m(x)[0, i] / 0.8))
    buf, out = np.zeros((1, ctx), np.int32), list(start[-ctx:])
    for _ in range(n):
        window = out[-ctx:]
        buf[0, : len(window)] = window
        key, sub = jax.random.split(key)
        out.append(int(step(m, jnp.asarray(buf), sub, len(window) - 1)))
    return out[len(start[-ctx:]) :]


def main() -> None:
    args = options()
    fx.seed(0)
    text = datasets.tutorial_text()
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text], np.int32)
    ctx, d = (32, 32) if args.tiny else (64, 64)
    cut = int(0.9 * len(ids))
    xt, yt = windows(ids[:cut], ctx, 6 if args.tiny else 2)
    xv, yv = windows(ids[cut:], ctx, ctx // 2)
    m = CharTransformer(len(chars), d, ctx)
    print(f"{len(text)} characters, {len(chars)} distinct; {len(xt)} training windows")
    print(f"model: {fx.nparams(m):_} parameters")
    state = fx.setup(fx.Adam(3e-3), m)
    loader = fx.DataLoader((xt, yt), batchsize=32, shuffle=True, rng=0)
    val = jax.jit(loss)
    print(f"epoch  0  validation loss {float(val(m, xv, yv)):.3f}")
    for epoch in range(1, args.epochs + 1):
        fx.train(loss, m, loader, state)
        print(f"epoch {epoch:2d}  validation loss {float(val(m, xv, yv)):.3f}")
    sample = generate(m, ids[cut : cut + ctx], 120 if not args.tiny else 40, ctx,
                      jax.random.key(1))  # fmt: skip
    print("sample: " + "".join(chars[i] for i in sample).replace("\n", " "))


if __name__ == "__main__":
    main()
