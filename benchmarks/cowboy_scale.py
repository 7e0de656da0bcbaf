"""Cowboy's λ_adv scale (issue "papers' tables, second pass", item 4): how strong the discriminator term is
against the fidelity term, read against the per-image mean of squared errors (the earlier reading) or their
sum (the papers' ‖x − G(z)‖², now the default).

At DefenseGAN's answer z* (paper settings, ``--restarts`` random restarts) for the first ``--n`` evaluation
images, it prints the mean norm of the latent gradient of each term: the fidelity term (per-pixel mean of
squared errors, DefenseGAN's), λ_adv · log(1 − D(G(z))) with λ_adv = 1e-3, and the same divided by the pixel
count (``adv_against_sum``), with their ratios.

    python benchmarks/cowboy_scale.py --n 20 --preset quick
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _common import command_line, data_root, dataset_name, markdown, write_table

from defbench.defenses.gan_prior import PAPER_CONFIGS
from defbench.harness.data import load_dataset
from defbench.harness.models import build_defense


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=dataset_name, default="fmnist")
    ap.add_argument("--preset", default="quick", help="GAN preset (zoo)")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/cowboy_scale.md")
    args = ap.parse_args(argv)
    data_root()
    test = load_dataset(args.dataset, "test")
    x, _ = test.get(test.eval_indices(args.n, 0))
    d = build_defense("cowboy", args.dataset, args.preset)
    G, D, lam = d.G, d.D, PAPER_CONFIGS["cowboy"].lambda_adv
    z = d.engine.project(x, PAPER_CONFIGS["defensegan"].with_(restarts=args.restarts), seed=0).z
    z = z.detach().clone().requires_grad_(True)
    g = G(z)
    fid = (g - x).flatten(1).pow(2).mean(1).sum()
    adv = (-F.softplus(D(g))).sum()  # log(1 − D(G(z))) with D's logit
    g_fid = torch.autograd.grad(fid, z, retain_graph=True)[0].norm(dim=1).mean()
    g_adv = lam * torch.autograd.grad(adv, z)[0].norm(dim=1).mean()
    pixels = x[0].numel()
    lines = [
        f"Command: `{command_line(argv)}`; {args.n} {args.dataset} test images (seed 0), the {args.preset} GAN, "
        f"at DefenseGAN's z* (paper settings, {args.restarts} restart(s)). Mean norm of each term's gradient "
        "with respect to z.",
        "",
        *markdown(
            [
                ["fidelity: per-pixel mean of squared errors (DefenseGAN)", f"{g_fid:.4g}", "1"],
                [
                    f"λ_adv log(1 − D), λ_adv = {lam:g} against the mean (earlier reading)",
                    f"{g_adv:.4g}",
                    f"{100 * g_adv / g_fid:.3g}%",
                ],
                [
                    f"λ_adv / {pixels} log(1 − D): against the per-image sum (the paper's; now)",
                    f"{g_adv / pixels:.4g}",
                    f"{100 * g_adv / pixels / g_fid:.3g}%",
                ],
            ],
            ["term", "gradient norm", "/ fidelity"],
            ["left", "right", "right"],
        ),
    ]
    return write_table(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
