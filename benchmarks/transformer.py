"""Training throughput of the character-level transformer of examples/14_transformer.py
(embedding, two pre-norm attention blocks with 4 heads, LayerNorm, Dropout 0.1, d = 64,
context 64, vocabulary 94, batch 32, Adam) in fluxjax against the same model in PyTorch
eager, on the equal-tries harness (interleaved, best of R each).

    python benchmarks/transformer.py [STEPS] [REPS]
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from harness import contest, table, timed

import fluxjax as fx

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
VOCAB, D, CTX, HEADS, BATCH = 94, 64, 64, 4, 32

spec = importlib.util.spec_from_file_location(
    "ex14", Path(__file__).resolve().parents[1] / "examples" / "14_transformer.py"
)
ex14 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ex14)

rng = np.random.default_rng(0)
X = rng.integers(0, VOCAB, (STEPS, BATCH, CTX)).astype(np.int32)
Y = rng.integers(0, VOCAB, (STEPS, BATCH, CTX)).astype(np.int32)


def ours():
    fx.seed(0)
    m = ex14.CharTransformer(VOCAB, D, CTX, HEADS)
    state = fx.setup(fx.Adam(3e-3), m)
    batches = [(X[i], Y[i]) for i in range(STEPS)]
    fx.train(ex14.loss, m, batches, state)  # compile and warm up

    def run():
        s = timed(
            lambda: (fx.train(ex14.loss, m, batches, state), m.head.weight.block_until_ready())
        )
        return {"fluxjax fx.train (transformer)": STEPS * BATCH / s}

    return run


class TBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
        self.attn = torch.nn.MultiheadAttention(D, HEADS, bias=False, batch_first=True)
        self.ff = torch.nn.Sequential(
            torch.nn.Linear(D, 4 * D), torch.nn.GELU("tanh"), torch.nn.Linear(4 * D, D)
        )
        self.drop = torch.nn.Dropout(0.1)
        self.register_buffer("mask", ~torch.tril(torch.ones(CTX, CTX, dtype=torch.bool)))

    def forward(self, x):
        h = self.ln1(x)
        y, _ = self.attn(h, h, h, attn_mask=self.mask, need_weights=False)
        x = x + self.drop(y)
        return x + self.drop(self.ff(self.ln2(x)))


class TModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = torch.nn.Embedding(VOCAB, D)
        self.pos = torch.nn.Parameter(torch.randn(CTX, D) * 0.1)
        self.blocks = torch.nn.Sequential(TBlock(), TBlock())
        self.ln = torch.nn.LayerNorm(D)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, idx):
        return self.head(self.ln(self.blocks(self.tok(idx) + self.pos)))


def peer():
    torch.manual_seed(0)
    m = TModel()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    xs = [torch.tensor(X[i], dtype=torch.long) for i in range(STEPS)]
    ys = [torch.tensor(Y[i], dtype=torch.long) for i in range(STEPS)]

    def epoch():
        for x, y in zip(xs, ys):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(x).reshape(-1, VOCAB), y.reshape(-1))
            loss.backward()
            opt.step()

    epoch()  # warm up

    def run():
        return {"PyTorch eager (transformer)": STEPS * BATCH / timed(epoch)}

    return run


if __name__ == "__main__":
    print(f"transformer training, {STEPS} steps of batch {BATCH}, best of {REPS} interleaved")
    best = contest([ours(), peer()], REPS, lower_is_better=False)
    name, pname = "fluxjax fx.train (transformer)", "PyTorch eager (transformer)"
    table([(name, best.get(name), pname, best.get(pname), 1.0)], "samples/s", False)
