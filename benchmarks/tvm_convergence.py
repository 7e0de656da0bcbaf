"""Does the ``tvm`` baseline return the TV minimiser at the weights the RIDE tables use? (noted by the s48 audit)

``tvm`` calls scikit-image's ``denoise_tv_chambolle`` with its defaults (at most 200 iterations, stopping once
the energy changes by less than ``eps`` = 2e-4 of its value). For each weight it purifies the first ``--n``
evaluation images (seed 0) as the defense does, solves the same problem again with ``tvm[iterations=N]``
(``--long-iters`` iterations, no early stop), and reports how far apart the two outputs are (largest and mean
per-image ℓ∞ distance, in [0, 1] pixel units) and how much higher the defense's output scores on the ROF energy
E(u) = w · TV(u) + ½ ‖u − f‖² than the long solve's (TV isotropic with forward differences, summed over the
channels, which scikit-image denoises one at a time; relative excess (E_tvm − E_long) / E_long, mean and largest
over the images).

    python benchmarks/tvm_convergence.py --n 20
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import command_line, data_root, markdown, write_table

from defbench.defenses.baselines import TVMinimization
from defbench.harness.data import load_dataset

#: RIDE Table 1's Chambolle sweep (0.25-1.75) and the defense's default 0.1
WEIGHTS = (0.1, 0.25, 0.5, 1.0, 1.75)


def rof_energy(u: np.ndarray, f: np.ndarray, w: float) -> float:
    """w · TV(u) + ½ ‖u − f‖² of one (C, H, W) image, TV of each channel summed."""
    dx = np.diff(u, axis=2, append=u[:, :, -1:])
    dy = np.diff(u, axis=1, append=u[:, -1:, :])
    tv = np.sqrt(dx**2 + dy**2).sum()
    return float(w * tv + 0.5 * ((u - f) ** 2).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    ap.add_argument("--long-iters", type=int, default=5000)
    ap.add_argument("--out", default="benchmarks/results/tvm_convergence.md")
    args = ap.parse_args(argv)
    data_root()
    rows = []
    for name in args.datasets:
        test = load_dataset(name, "test")
        x, _ = test.get(test.eval_indices(args.n, 0))
        f = x.double().numpy()
        for w in args.weights:
            ours = TVMinimization(weight=w).purify(x).double().numpy()
            ref = TVMinimization(weight=w, iterations=args.long_iters).purify(x).double().numpy()
            dist = np.abs(ours - ref).reshape(len(f), -1).max(1)
            e_ours = np.array([rof_energy(o, fi, w) for o, fi in zip(ours, f, strict=True)])
            e_ref = np.array([rof_energy(r, fi, w) for r, fi in zip(ref, f, strict=True)])
            excess = (e_ours - e_ref) / e_ref
            rows.append(
                [
                    name,
                    f"{w:g}",
                    f"{dist.max():.3f}",
                    f"{dist.mean():.3f}",
                    f"{100 * excess.mean():.2f}%",
                    f"{100 * excess.max():.2f}%",
                ]
            )
    lines = [
        f"Command: `{command_line(argv)}`; the first {args.n} evaluation images (seed 0) of each test set; `tvm` "
        f"(scikit-image defaults) against `tvm[iterations={args.long_iters}]` (the same problem, no early stop).",
        "",
        *markdown(
            rows,
            [
                "dataset",
                "weight",
                "largest ℓ∞ distance",
                "mean ℓ∞ distance",
                "mean energy excess",
                "largest energy excess",
            ],
            ["l", "r", "r", "r", "r", "r"],
        ),
    ]
    return write_table(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
