"""benchmarks/subset_classes.py: the images per class a GAN recipe trains on."""

from __future__ import annotations

import torch
from conftest import import_benchmark, md_rows


def test_counts_and_balanced_weights_by_hand():
    sc = import_benchmark("subset_classes")
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 1, 0])
    counts = sc.class_counts(labels, torch.tensor([0, 1, 3, 4, 5]), classes=3)
    assert counts.tolist() == [2, 1, 2]
    assert torch.allclose(sc.balanced_weights(counts), torch.tensor([5 / 6, 5 / 3, 5 / 6]))


def test_table_counts_the_split_train_gan_uses(fmnist, tmp_path):
    """Every column sums to the images the recipe trains on (the split less its validation slice, times the
    fraction), and a column is the seed's own split: seeds 1 and 2 at 0.8 count different images."""
    sc = import_benchmark("subset_classes")
    out = tmp_path / "t.md"
    assert sc.main(["--seeds", "1", "2", "--fractions", "0.8", "0.8", "--out", str(out)]) == 0
    rows = md_rows(out.read_text())
    cells = [[int(c.split()[0]) for c in r[1:]] for r in rows[1:11]]
    n = len(fmnist[0])
    expected = int((n - 100) * 0.8)
    assert [sum(col) for col in zip(*cells, strict=True)] == [expected, expected]
    assert [r[0] for r in cells] != [r[1] for r in cells]


def test_table_cells_and_summary_by_hand(fmnist, tmp_path):
    """Without --fractions every seed trains on the whole split less its validation slice; per class the images
    of seed 1's training split (training_split, the one train_gan uses), their share of the column and the
    balanced weight mean / count; the summary names the smallest and largest class and the weights' range."""
    from defbench.datasets import CLASS_NAMES
    from defbench.defenses.train_prior import gan_recipe, training_split

    sc = import_benchmark("subset_classes")
    out = tmp_path / "t.md"
    assert sc.main(["--seeds", "1", "--out", str(out)]) == 0
    train = fmnist[0]
    _, subset = training_split(len(train), gan_recipe("fmnist", "paper", subset_fraction=1.0), 1)
    labels = train.labels[subset].tolist()
    counts = [labels.count(c) for c in range(10)]
    total = sum(counts)
    assert total == len(train) - 100
    mean = total / 10
    rows = md_rows(out.read_text())[1:11]
    names = CLASS_NAMES["fmnist"]
    for c in range(10):
        assert rows[c] == [f"{c} {names[c]}", f"{counts[c]} ({100 * counts[c] / total:.2f}%) ×{mean / counts[c]:.3f}"]
    lo, hi = counts.index(min(counts)), counts.index(max(counts))
    assert (
        f"- seed 1, fraction 1: {total} images; smallest class {names[lo]} {100 * counts[lo] / total:.2f}%, largest "
        f"{names[hi]} {100 * counts[hi] / total:.2f}%; a balanced sampler changes a class's share by "
        f"×{mean / max(counts):.3f} to ×{mean / min(counts):.3f}."
    ) in out.read_text()
