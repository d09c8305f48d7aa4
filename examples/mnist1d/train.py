"""Train the course notes' MNIST-1D convnet and its fully connected baseline from their specs.

    python examples/mnist1d/train.py --steps 10000 --out mnist1d-results

Both networks are compiled from `.cnn` files with cnndsl (`specs/mnist1d.cnn`, 2,050 parameters, and
`examples/mnist1d/fc_baseline.cnn`, 150,185), then trained the notes' way: SGD, learning rate 0.01,
batch 100, cross-entropy. The MNIST-1D data (4,000 train / 1,000 test) is generated offline by the
`mnist1d` package. Writes `results.json` (test accuracy and the curves) and `learning_curves.png`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import click
import numpy as np
import torch
from torch import nn

import cnndsl

HERE = Path(__file__).resolve().parent
SPECS = {"convnet": HERE.parent.parent / "specs" / "mnist1d.cnn", "fully connected": HERE / "fc_baseline.cnn"}


def mnist1d_data(seed: int) -> dict[str, torch.Tensor]:
    """The standard MNIST-1D split, generated (never downloaded); signals as 1 x 40 inputs."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    return {"x": torch.tensor(data["x"], dtype=torch.float32).unsqueeze(1),
            "y": torch.tensor(data["y"], dtype=torch.long),
            "x_test": torch.tensor(data["x_test"], dtype=torch.float32).unsqueeze(1),
            "y_test": torch.tensor(data["y_test"], dtype=torch.long)}


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = (model(x).argmax(dim=1) == y).float().mean().item()
    model.train()
    return correct


def train(name: str, spec: Path, data: dict[str, torch.Tensor], steps: int, batch: int, lr: float,
          eval_every: int, seed: int) -> dict[str, object]:
    network = cnndsl.load(spec)
    model = network.to_torch(seed=seed).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    n = len(data["y"])
    curve: dict[str, list[float]] = {"step": [], "train_accuracy": [], "test_accuracy": [], "loss": []}
    order = torch.randperm(n, generator=generator)
    cursor, running = 0, 0.0
    start = time.perf_counter()
    label = f"{name:>15} ({network.report().totals.params:,} params)"
    with click.progressbar(range(1, steps + 1), label=label, show_pos=True, show_eta=True,
                           item_show_func=lambda s: f"loss {running:.3f}" if s else None) as bar:
        for step in bar:
            if cursor + batch > n:  # a new epoch: reshuffle
                order, cursor = torch.randperm(n, generator=generator), 0
            index = order[cursor:cursor + batch]
            cursor += batch
            loss = loss_fn(model(data["x"][index]), data["y"][index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % eval_every == 0 or step == steps:
                curve["step"].append(step)
                curve["loss"].append(running)
                curve["train_accuracy"].append(accuracy(model, data["x"], data["y"]))
                curve["test_accuracy"].append(accuracy(model, data["x_test"], data["y_test"]))
    return {"spec": str(spec.relative_to(HERE.parent.parent)), "params": network.report().totals.params,
            "test_accuracy": curve["test_accuracy"][-1], "train_accuracy": curve["train_accuracy"][-1],
            "seconds": round(time.perf_counter() - start, 1), "curve": curve}


def plot(results: dict[str, dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for (name, result), colour in zip(results.items(), ["tab:blue", "tab:orange"], strict=False):
        curve = result["curve"]
        assert isinstance(curve, dict)
        label = f"{name} ({result['params']:,} params)"
        left.plot(curve["step"], curve["loss"], color=colour, label=label)
        right.plot(curve["step"], [100 * a for a in curve["test_accuracy"]], color=colour, label=f"{label}, test")
        right.plot(curve["step"], [100 * a for a in curve["train_accuracy"]], color=colour, linestyle=":",
                   label=f"{name}, train")
    left.set(xlabel="step", ylabel="training loss (smoothed)", title="MNIST-1D: loss")
    right.set(xlabel="step", ylabel="accuracy (%)", title="MNIST-1D: accuracy", ylim=(0, 100))
    left.legend(), right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10000, help="SGD steps per network (the notes: 100,000)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the initialisation and the batches")
    parser.add_argument("--out", type=Path, default=Path("mnist1d-results"))
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = mnist1d_data(args.seed)
    results = {name: train(name, spec, data, args.steps, args.batch, args.lr, args.eval_every, args.seed)
               for name, spec in SPECS.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    (args.out / "results.json").write_text(json.dumps({"settings": settings, "results": results}, indent=1))
    plot(results, args.out / "learning_curves.png")
    for name, result in results.items():
        print(f"{name:>15}: {result['params']:>7,} params, test accuracy {100 * float(result['test_accuracy']):.1f}% "
              f"(train {100 * float(result['train_accuracy']):.1f}%), {result['seconds']} s")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'learning_curves.png'}")
    return results


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
