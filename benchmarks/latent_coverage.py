"""Where in the latent cube each class of test images projects (issue: papers' tables, second pass, item 3).

The paper-preset Fashion-MNIST prior never samples a trouser from z ~ U(-1, 1)^100, yet DefenseGAN's projection
recovers most test trousers. This script asks where their latents z* lie: DefenseGAN projection (the paper
settings, R = 10, L = 200; z is clamped to the cube after every step) of ``--n`` seeded test images, and per
class the mean share of z*'s coordinates on the cube's faces (|z_i| > 0.99), the mean ‖z*‖₂ (a uniform draw
has about √(100/3) = 5.8), and the classifier's accuracy on G(z*). A class whose latents sit on the faces is
in the range of G but carries almost no prior mass: uniform draws land within 0.01 of a face in only 1% of
their coordinates.

    OMP_NUM_THREADS=1 python benchmarks/latent_coverage.py --n 200 --out benchmarks/results/latent_coverage_fmnist.md
"""

from __future__ import annotations

import argparse

import torch
from _common import command_line, data_root, dataset_name, markdown, write_table

from defbench.datasets import class_names
from defbench.defenses.projection import ProjectionEngine
from defbench.defenses.gan_prior import PAPER_CONFIGS
from defbench.harness.data import load_dataset
from defbench.harness.models import get_classifier, get_gan

FACE = 0.99


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=dataset_name, default="fmnist")
    ap.add_argument("--n", type=int, default=200, help="seeded test images (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/latent_coverage.md")
    args = ap.parse_args(argv)
    root = data_root()
    classifier, _ = get_classifier(args.dataset, "paper", "cpu", root, train_missing=False)
    G = get_gan(args.dataset, "paper", "cpu", root, train_missing=False)[0].eval()
    test = load_dataset(args.dataset, "test", root)
    idx = test.eval_indices(args.n, args.seed)
    engine, cfg = ProjectionEngine(G), PAPER_CONFIGS["defensegan"]
    zs, ys, ok = [], [], []
    for i, start in enumerate(range(0, args.n, 100)):
        x, y = test.get(idx[start : start + 100])
        proj = engine.project(x, cfg, seed=args.seed + i)
        with torch.no_grad():
            ok.append(classifier(proj.x_hat).argmax(1) == y)
        zs.append(proj.z.reshape(len(x), -1)), ys.append(y)
    z, y, ok = torch.cat(zs), torch.cat(ys), torch.cat(ok)
    u = torch.rand(10_000, z.shape[1], generator=torch.Generator().manual_seed(args.seed)) * 2 - 1

    def stats(name: str, zz: torch.Tensor, correct: torch.Tensor | None) -> list[object]:
        """One table row: images, % of coordinates on a face, mean norm, % correct on G(z*)."""
        face = 100 * (zz.abs() > FACE).float().mean()
        acc = "—" if correct is None else f"{100 * correct.float().mean():.0f}"
        return [name, len(zz), f"{face:.1f}", f"{zz.norm(dim=1).mean():.2f}", acc]

    names = class_names(args.dataset, int(y.max()) + 1)
    rows = [stats("U(-1, 1) draws (10,000)", u, None)]
    rows += [stats(name, z[y == c], ok[y == c]) for c, name in enumerate(names) if (y == c).any()]
    rows.append(stats("all", z, ok))
    header = ["class", "images", f"z* coordinates on a face (|z_i| > {FACE}) %", "mean ‖z*‖₂", "accuracy on G(z*) %"]
    lines = [
        f"Command: `{command_line(argv)}`; CPU; {args.dataset} paper-preset GAN and classifier, DefenseGAN "
        f"projection (R = {cfg.restarts}, L = {cfg.latent_steps}) of {args.n} seeded test images.",
        "",
        *markdown(rows, header, ["left"] + ["right"] * 4),
    ]
    return write_table(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
