"""benchmarks/binarize_readings.py: which readings of Fig. 4(b)'s binarisation blank an image."""

from __future__ import annotations

import torch
from conftest import import_benchmark


def test_a_mostly_background_image_turns_flat_white_only_with_ties_on_white():
    br = import_benchmark("binarize_readings")
    x = torch.zeros(2, 1, 28, 28)
    x[0, :, 10:14, 10:14] = 0.8  # 16 of 784 pixels: the image's median is 0 (background)
    x[1] = torch.linspace(0, 1, 784).view(1, 28, 28)  # no ties at the median
    r = br.readings(x)
    white, black = (
        r["per image median, ties white (`binarize`, the default)"],
        r["per image median, ties black (`binarize[ties=black]`)"],
    )
    assert torch.equal(white[0], torch.ones(1, 28, 28))  # every pixel >= its median 0: one flat white image
    assert black[0].sum() == 16 and white[1].sum() == black[1].sum() == 392  # half of a tie-free image
    unit = {k: v for k, v in r.items() if not k.endswith("on [-1, 1]")}
    assert len(unit) == 5 and all(set(v.unique().tolist()) <= {0.0, 1.0} for v in unit.values())
    # each reading again with its 0s and 1s written on [-1, 1] pixels: mid-grey and white, the same pixels white
    signed = {k: v for k, v in r.items() if k.endswith("on [-1, 1]")}
    assert len(signed) == 5 and all(
        torch.equal(s, 0.5 + 0.5 * u) for s, u in zip(signed.values(), unit.values(), strict=True)
    )
    from defbench.attacks.registry import get_attack

    assert torch.equal(
        r["per image median, ties black (`binarize[range=signed,ties=black]`); 0s and 1s on [-1, 1]"],
        get_attack("binarize", "fmnist", range="signed", ties="black").corrupt(x),
    )


def test_the_other_thresholds_by_hand():
    br = import_benchmark("binarize_readings")
    x = torch.tensor([[0.0, 0.0, 0.2, 0.4, 0.6], [0.45, 0.0, 0.0, 0.0, 0.0]]).view(2, 1, 1, 5)
    r = {k: v.flatten(1).tolist() for k, v in br.readings(x).items() if not k.endswith("on [-1, 1]")}
    # non-zero pixels' medians 0.4 and 0.45; 6 of the 10 pixels are 0, so the batch's median is 0
    assert r["per image median of the non-zero pixels, x > t"] == [[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    assert r["median of all pixels of all images, x > t"] == [[0, 0, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert r["the middle of the range, x > 0.5"] == [[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]


def test_main_cells_by_hand(monkeypatch, tmp_path):
    br = import_benchmark("binarize_readings")
    x = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.8],  # ties white: all white; black: one white pixel
            [0.0, 0.0, 0.0, 0.0],  # white: all white; black: all black
            [0.1, 0.3, 0.3, 0.9],  # median 0.3: white 0 1 1 1, black 0 0 0 1
            [0.6, 0.6, 0.6, 0.6],  # white: all white; black: all black
            [0.9, 0.2, 0.2, 0.1],  # median 0.2: white 1 1 1 0, black 1 0 0 0
            [0.5, 0.5, 0.1, 0.9],  # median 0.5: white 1 1 0 1, black 0 0 0 1
        ]
    ).view(6, 1, 2, 2)
    y = torch.tensor([4, 0, 3, 0, 3, 3])
    got = []

    class Data:
        def eval_indices(self, n, seed):
            got.append((n, seed))
            return list(range(6))

        def get(self, idx):
            return x, y

    def clf(images):  # the class is the number of white pixels (the pixel sum, rounded)
        return -((torch.arange(5) - images.flatten(1).sum(1, keepdim=True)) ** 2)

    monkeypatch.setattr(br, "load_dataset", lambda *a, **k: Data())
    monkeypatch.setattr(br, "fmnist_classifier", lambda name, root: (clf, "a fake classifier"))
    out = tmp_path / "t.md"
    assert br.main(["--seed", "2", "--out", str(out)]) == 0
    assert got == [(500, 2)]  # the figure's 500 images by default, of the seed asked for
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.read_text().splitlines()[4:]]
    rows = {r[0]: [c.split(" (")[0] for c in r[1:]] for r in rows}  # accuracy cells without their intervals
    # ties white: classes 4 4 3 4 3 3, right on images 0, 2, 4, 5; flat: 0, 1, 3 (labels 4, 0, 0: one answer, 2)
    assert rows["per image median, ties white (`binarize`, the default)"] == ["66.7", "50.0", "33.3", "66.7", "100.0"]
    # ties black: classes 1 0 1 0 1 1, right on images 1 and 3, the flat black ones (labels 0, 0)
    assert rows["per image median, ties black (`binarize[ties=black]`)"] == ["33.3", "33.3", "100.0", "100.0", "0.0"]


def test_flat_images_of_two_colours_get_one_answer_each():
    """Session 50's audit: flat white and flat black images are two inputs, so a purifier answers each; the bound
    was the largest class over all flat images (50% here), where it is the largest per colour, summed (100%)."""
    br = import_benchmark("binarize_readings")
    x = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.5, 0.5]]).view(5, 1, 1, 2)
    y = torch.tensor([3, 7, 3, 7, 3])
    assert br.best_per_colour(x, y) == 5  # white: 3 3 3, black: 7 7
    assert br.best_per_colour(x[:4], torch.tensor([3, 7, 5, 7])) == 3  # white 3 | 5: one right; black 7 7
