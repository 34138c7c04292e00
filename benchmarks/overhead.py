"""trainlab's time per epoch divided by a tight hand-written PyTorch loop's.

Same model, data, batch size and optimizer settings; in-memory tensors;
randperm batches. The last figure does the same for stacked members: five
digits MLPs trained by `trainlab.stacked.fit_members` (stack="on") against the
same five written out by hand as batched products (``torch.baddbmm``), one
cross-entropy over the members and one fused Adam step. The two are run interleaved in one process (reference,
trainlab, reference, trainlab, ...) and the ratio is the median over rounds of
trainlab's epoch time over the reference's in the same round, so machine noise
hits both sides alike. The reference uses torch.optim.Adam's defaults;
trainlab uses its own defaults (the fused CPU Adam kernel where available) and
also computes the accuracy metric each batch, as a user's fit would.

    python benchmarks/overhead.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import trainlab
from trainlab.layers import Dense
from trainlab.stacked import MemberConfig, fit_members


def reference_epochs(x: torch.Tensor, y: torch.Tensor, sizes: list[int], batch_size: int,
                     epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = x.shape[0]
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / epochs


def trainlab_mlp(sizes: list[int]) -> trainlab.Sequential:
    """The MLP of `sizes` (inputs first) as a trainlab Sequential: ReLU hidden layers, softmax output."""
    hidden = [Dense(units, activation="relu") for units in sizes[1:-1]]
    return trainlab.Sequential([*hidden, Dense(sizes[-1], activation="softmax")])


def trainlab_epochs(x: torch.Tensor, y: torch.Tensor, sizes: list[int], batch_size: int,
                    epochs: int, seed: int) -> float:
    model = trainlab_mlp(sizes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.build((sizes[0],))
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, seed=seed)
    return (time.perf_counter() - start) / epochs


MEMBERS = 5


def stacked_reference_epochs(x: torch.Tensor, y: torch.Tensor, sizes: list[int], batch_size: int,
                             epochs: int, seed: int) -> float:
    """MEMBERS copies of the MLP as (m, out, in) weights, features first between layers, each
    member with its own row order; the members' batch means summed, one fused Adam step."""
    torch.manual_seed(seed)
    m = MEMBERS
    weights, biases = [], []
    for a, b in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / a ** 0.5
        weights.append((torch.rand(m, b, a) * 2 * bound - bound).requires_grad_())
        biases.append((torch.rand(m, b) * 2 * bound - bound).requires_grad_())
    params = weights + biases
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    n = x.shape[0]
    offsets = (torch.arange(m) * n).unsqueeze(1)
    xs = x.repeat(m, 1)
    last = len(weights) - 1
    start = time.perf_counter()
    for _ in range(epochs):
        orders = torch.stack([torch.randperm(n) for _ in range(m)])
        for i in range(0, n, batch_size):
            idx = orders[:, i:i + batch_size]
            b = idx.shape[1]
            h = xs.index_select(0, (idx + offsets).view(-1)).view(m, b, -1).transpose(1, 2)
            for k, (w, bias) in enumerate(zip(weights, biases)):
                h = torch.baddbmm(bias.unsqueeze(2), w, h)
                if k < last:
                    h = torch.relu_(h)
            loss = F.cross_entropy(h, y[idx], reduction="none").sum() / b
            for p in params:
                p.grad = None
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / epochs


def stacked_trainlab_epochs(x: torch.Tensor, y: torch.Tensor, sizes: list[int], batch_size: int,
                            epochs: int, seed: int) -> float:
    model = trainlab_mlp(sizes)
    members = [MemberConfig(seed=seed * MEMBERS + k, optimizer={"name": "adam", "lr": 1e-3}) for k in range(MEMBERS)]
    start = time.perf_counter()
    fit_members(model, members, (x, y), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                batch_size=batch_size, num_epochs=epochs, device="cpu", stack="on")
    return (time.perf_counter() - start) / epochs


def measure(name: str, x: torch.Tensor, y: torch.Tensor, sizes: list[int], batch_size: int,
            epochs: int, rounds: int, stacked: bool = False) -> float:
    reference = stacked_reference_epochs if stacked else reference_epochs
    ours = stacked_trainlab_epochs if stacked else trainlab_epochs
    # Warm-up: first calls pay for allocator growth and lazy initialization.
    reference(x, y, sizes, batch_size, 1, 0)
    ours(x, y, sizes, batch_size, 1, 0)
    ratios, refs, times = [], [], []
    for r in range(rounds):
        ref = reference(x, y, sizes, batch_size, epochs, r)
        tl = ours(x, y, sizes, batch_size, epochs, r)
        refs.append(ref)
        times.append(tl)
        ratios.append(tl / ref)
    ratio = statistics.median(ratios)
    print(f"{name:<38}  reference {statistics.median(refs) * 1e3:8.1f} ms/epoch   "
          f"trainlab {statistics.median(times) * 1e3:8.1f} ms/epoch   ratio {ratio:.3f} "
          f"(rounds: {', '.join(f'{q:.3f}' for q in ratios)})")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds (smoke run)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, trainlab {trainlab.__version__}")

    digits = trainlab.datasets.load("digits")
    xd = (digits.x - digits.x.mean(0)) / (digits.x.std(0) + 1e-6)
    measure("digits MLP 64-256-256-10, batch 32", xd, digits.y, [64, 256, 256, 10], 32,
            epochs=3, rounds=args.rounds if not args.quick else 2)

    n = 100_000 if not args.quick else 10_000
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(n, 100, generator=gen)
    ys = torch.randint(0, 10, (n,), generator=gen)
    measure(f"synthetic {n}x100 MLP 100-512-512-10, b256", xs, ys, [100, 512, 512, 10], 256,
            epochs=1, rounds=args.rounds if not args.quick else 2)
    measure(f"{MEMBERS} stacked digits MLPs, batch 32", xd, digits.y, [64, 256, 256, 10], 32,
            epochs=3, rounds=args.rounds if not args.quick else 2, stacked=True)


if __name__ == "__main__":
    main()
