"""benchmarks/anomaly_share.py: the share batch changes the left-out share alone, the table reads the scores."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_benchmark


@pytest.fixture(scope="module")
def sh():
    # harness.matrix binds build_defense when first imported; the script first imports it inside main(), which
    # these tests run with build_defense patched, so a first import there would keep the fake for later tests
    import defbench.harness.matrix  # noqa: F401

    return import_benchmark("anomaly_share")


LABELS = np.array([0, 1, 2, 1, 3, 1, 4, 5, 1, 6, 1, 7, 1, 8, 9, 1])  # class 1 at 1, 3, 5, 8, 10, 12, 15


def test_share_batch_keeps_positions_and_base_positives(sh):
    base = np.array([0, 1, 2, 4, 6, 7, 9, 11, 13, 14])  # one class-1 image (position 1) among 10
    out = sh.batches(LABELS, base, 1, 0.4, seed=0)
    share = out["share"]
    assert (out["base"] == base).all()
    assert (LABELS[share] == 1).sum() == 4  # round(0.4 * 10)
    assert len(set(share.tolist())) == len(share)  # no image twice
    kept = share == base
    assert kept[:7].all() and not kept[7:].any()  # the last three negatives replaced, every other image in place
    assert (LABELS[share[7:]] == 1).all() and not set(share[7:]) & set(base)
    assert (out["share"] == sh.batches(LABELS, base, 1, 0.4, seed=0)["share"]).all()  # seeded


@pytest.mark.parametrize(
    ("share", "message"), [(0.05, "under the base batch's share"), (1.0, "no negatives"), (0.9, "only 7")]
)
def test_share_batch_refuses_what_it_cannot_build(sh, share, message):
    base = np.array([0, 1, 2, 4, 6, 7, 9, 11, 13, 14])
    with pytest.raises(ValueError, match=message):
        sh.batches(LABELS, base, 1, share, seed=0)


def test_class_rows_auc_and_score_change(sh):
    base = np.array([0, 1, 2, 4])  # class 1 at position 1
    share = np.array([0, 1, 3, 4])  # position 2 replaced by another 1
    idx = {"base": base, "share": share}
    score = {
        ("base", "f̂ = I"): np.array([1.0, 5.0, 2.0, 3.0]),  # the positive scores highest: AUC 1
        ("share", "f̂ = I"): np.array([1.0, 5.0, 0.5, 3.0]),  # shared images unchanged, new positive lowest
        ("base", "MimicGAN"): np.array([1.0, 0.5, 2.0, 3.0]),  # the positive lowest: AUC 0
        ("share", "MimicGAN"): np.array([1.25, 0.5, 6.0, 3.0]),  # image 0 moved by 0.25
    }
    rows = sh.class_rows(1, idx, score, LABELS)
    got = {(r[1], r[2]): r for r in rows}
    assert got[("f̂ = I", "base")][3:5] == [1, 3] and got[("f̂ = I", "share")][3:5] == [2, 2]
    assert got[("f̂ = I", "base")][5].startswith("1.000")
    assert got[("f̂ = I", "share")][5].startswith("0.500")  # one positive above both negatives, one under
    assert got[("MimicGAN", "base")][5].startswith("0.000") and got[("MimicGAN", "share")][5].startswith("0.500")
    assert got[("f̂ = I", "base")][6] == "0" and got[("MimicGAN", "share")][6] == "0.25"
    for alone in ("base", "share"):  # one batch run (--batches): its AUCs, no score change to report
        one = sh.class_rows(1, {alone: idx[alone]}, score, LABELS)
        assert [(r[1], r[2], r[6]) for r in one] == [("f̂ = I", alone, "—"), ("MimicGAN", alone, "—")]
        assert one[0][5] == got[("f̂ = I", alone)][5]


class _Fake:
    """A stand-in defense: x̂ = x scaled by a per-image factor (f̂ = I: the image's own mean) or by the batch
    mean (MimicGAN: a fit shared by the batch, as its surrogate is)."""

    def __init__(self, shared: bool):
        self.shared = shared

    def purify(self, x, seed=0):
        m = x.mean() if self.shared else x.flatten(1).mean(1).view(-1, 1, 1, 1)
        return x * (1 - m)


def test_main_scores_both_batches_and_flags_the_batch_dependent_row(sh, tmp_path, monkeypatch):
    import json

    import torch

    from defbench.datasets import ImageData
    from defbench.harness import data, models

    g = torch.Generator().manual_seed(0)
    images = (torch.rand(40, 1, 4, 4, generator=g) * 255).to(torch.uint8)
    labels = torch.arange(40) % 4
    fake_set = ImageData("mnist", "test", labels, "test", images=images)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: fake_set)
    built = []
    monkeypatch.setattr(
        models, "build_defense", lambda name, *a, **k: built.append(name) or _Fake("identity" not in name)
    )
    out, save = tmp_path / "t.md", tmp_path / "s.json"
    assert sh.main(["--classes", "1", "--n", "10", "--share", "0.5", "--out", str(out), "--save", str(save)]) == 0
    rows = [r.split("|")[1:-1] for r in out.read_text().splitlines() if r.startswith("| 1 ")]
    moved = {(r[1].strip(), r[2].strip()): r[6].strip() for r in rows}
    assert moved[("f̂ = I", "base")] == "0" and float(moved[("MimicGAN", "base")]) > 0
    saved = json.loads(save.read_text())["1"]
    assert sum(labels[saved["share"]["indices"]] == 1) == 5 and len(saved["base"]["MimicGAN"]) == 10
    assert all("gan=no1," in b for b in built)  # the paper run's GANs by default
    built.clear()
    assert sh.main(["--classes", "1", "--n", "10", "--gan-seed", "2"]) == 0
    assert len(built) == 2 and all("gan=s2-no1," in b for b in built)
    assert sh.main(["--classes", "1", "--n", "10", "--share", "0.95"]) == 2  # refused: no negatives left


def test_summarize_reads_the_tables_back_and_pairs_the_rows(sh, tmp_path):
    aucs = {0: (0.8, 0.9, 0.7, 0.6), 1: (0.1, 0.2, 0.3, 0.2), 2: (0.5, 0.7, 0.5, 0.5)}  # f̂ base, Mimic base, ...
    header = ["left out", "r", "b", "p", "n", "a", "c"]
    paths = []
    for k, (fb, mb, fs, ms) in aucs.items():
        lines = [[k, "f̂ = I", "base", 8, 92, f"{fb:.3f} (0.1–0.9)", "0"], [k, "f̂ = I", "share", 36, 64, fs, "0"]]
        lines += [[k, "MimicGAN", "base", 8, 92, f"{mb:.3f} (0.1–0.9)", "2"], [k, "MimicGAN", "share", 36, 64, ms, "2"]]
        paths.append(tmp_path / f"t{k}.md")
        paths[-1].write_text("Command: x\n\n" + "\n".join(sh.markdown(lines, header)))
    got = sh.read_tables([str(p) for p in paths])
    assert got[(0, 1, "MimicGAN", "base")] == 0.2 and got[(0, 2, "f̂ = I", "share")] == 0.5 and len(got) == 12
    text = "\n".join(sh.summary(got))
    assert "base, f̂ = I: mean 0.467 ± 0.351 over 3 classes" in text
    assert "base: MimicGAN − f̂ = I +0.133 on average, MimicGAN above on 3 of 3 classes" in text
    assert "share: MimicGAN − f̂ = I -0.067 on average, MimicGAN above on 0 of 3 classes" in text
    assert "share − base of that difference: -0.200 on average, larger on 0 of 3 classes" in text
    assert "GAN seed" not in text  # one seed: the lines of a single run
    with pytest.raises(ValueError, match="GAN seed 0, class 0, f̂ = I, base batch is in two tables"):
        sh.read_tables([str(paths[0]), str(paths[0])])
    assert sh.main(["--summarize", str(paths[0]), str(paths[0])]) == 2


def test_main_base_batch_alone(sh, tmp_path, monkeypatch):
    import torch

    from defbench.datasets import ImageData
    from defbench.harness import data, models

    images = (torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    fake_set = ImageData("mnist", "test", torch.arange(40) % 4, "test", images=images)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: fake_set)
    calls = []

    class Counting(_Fake):
        def purify(self, x, seed=0):
            calls.append(len(x))
            return super().purify(x, seed)

    monkeypatch.setattr(models, "build_defense", lambda name, *a, **k: Counting("identity" not in name))
    out = tmp_path / "t.md"
    # a share no batch of 10 can hold is not asked for when the share batch is not run
    args = ["--classes", "1", "--n", "10", "--share", "0.95", "--batches", "base", "--gan-seed", "3"]
    assert sh.main(args + ["--out", str(out)]) == 0
    assert calls == [10, 10]  # one batch per row
    text = out.read_text()
    rows = [c for c in text.splitlines() if c.startswith("| 1 ")]
    assert len(rows) == 2 and all("| base " in r and r.rstrip(" |").endswith("—") for r in rows)
    assert "(not run here)" in text and "gan-mnist-paper-s3-noK" in text
    assert set(sh.read_tables([str(out)])) == {(3, 1, "f̂ = I", "base"), (3, 1, "MimicGAN", "base")}
    assert "Both rows with" not in text


def test_options_reach_both_rows_and_the_caption(sh, tmp_path, monkeypatch):
    import torch

    from defbench.datasets import ImageData
    from defbench.harness import data, models

    images = (torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    monkeypatch.setattr(
        data, "load_dataset", lambda *a, **k: ImageData("mnist", "test", torch.arange(40) % 4, "test", images=images)
    )
    names = []

    def build(name, *a, **k):
        names.append(name)
        return _Fake("identity" not in name)

    monkeypatch.setattr(models, "build_defense", build)
    out = tmp_path / "t.md"
    args = ["--classes", "1", "--n", "10", "--batches", "base", "--options", "optimizer=rmsprop-tf"]
    assert sh.main(args + ["--out", str(out)]) == 0
    assert names == [
        "mimicgan[gan=no1,latent_steps=75,surrogate=identity,surrogate_steps=25,optimizer=rmsprop-tf]",
        "mimicgan[gan=no1,latent_steps=75,surrogate_steps=25,optimizer=rmsprop-tf]",
    ]
    assert "Both rows with `optimizer=rmsprop-tf`." in out.read_text()
    assert sh.with_options("m[a=1]", "") == "m[a=1]" and sh.with_options("m", "b=2") == "m[b=2]"


def test_summarize_compares_gan_seeds_class_by_class(sh, tmp_path):
    header = ["left out", "r", "b", "p", "n", "a", "c"]
    paths = []
    for seed, f_auc in ((0, {0: 0.8, 1: 0.1, 2: 0.6}), (1, {0: 0.5, 2: 0.7})):  # seed 1: classes 0 and 2 only
        lines = [
            [k, row, "base", 8, 92, f"{v + (0.05 if row == 'MimicGAN' else 0):.3f}", "—"]
            for k, v in f_auc.items()
            for row in ("f̂ = I", "MimicGAN")
        ]
        name = "gan-mnist-paper-noK" if seed == 0 else f"gan-mnist-paper-s{seed}-noK"
        paths.append(tmp_path / f"s{seed}.md")
        paths[-1].write_text(f"Command: x. GANs {name} (class K left out).\n\n" + "\n".join(sh.markdown(lines, header)))
    text = "\n".join(sh.summary(sh.read_tables([str(p) for p in paths])))
    assert "GAN seed 0, base, f̂ = I: mean 0.500 ± 0.361 over 3 classes" in text
    assert "GAN seed 1, base, f̂ = I: mean 0.600 ± 0.141 over 2 classes" in text
    assert "share" not in text  # no share batch was run
    extra = tmp_path / "share1.md"  # a share batch for one class of seed 0's three: said, not averaged
    extra.write_text(
        "Command: x. GANs gan-mnist-paper-noK (class K left out).\n\n"
        + "\n".join(sh.markdown([[0, r, "share", 36, 64, "0.500", "0"] for r in ("f̂ = I", "MimicGAN")], header))
    )
    text = "\n".join(sh.summary(sh.read_tables([str(p) for p in paths] + [str(extra)])))
    for row in ("f̂ = I", "MimicGAN"):
        assert f"GAN seed 0, share, {row}: 1 of 3 classes only (classes 0), no mean over classes" in text
    # paired over classes 0 and 2 (class 1 has no seed-1 run): -0.3 and +0.1
    assert (
        "base, f̂ = I, GAN seed 1 − seed 0 over the 2 classes both hold: the mean moves by -0.100; a class by 0.200 "
        "on average, at most 0.300 (class 0); per class 0: -0.30, 2: +0.10" in text
    )


def test_rows_runs_one_row_and_the_end_state_table_reads_the_learned_surrogate(sh, tmp_path, monkeypatch, random_gan):
    """--rows MimicGAN builds and scores that row alone; the table after the AUCs gives the learned f̂ at the end
    of each purification (its conv path's live share; W, or the spatial transformer's distance from I), read
    from the defense's last projection, and stays out of read_tables' rows."""
    import torch

    from defbench.datasets import ImageData
    from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
    from defbench.harness import data, models

    images = (torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    monkeypatch.setattr(
        data, "load_dataset", lambda *a, **k: ImageData("mnist", "test", torch.arange(40) % 4, "test", images=images)
    )
    G, D = random_gan
    small = PAPER_CONFIGS["mimicgan"].with_(outer_iters=1, surrogate_steps=3, latent_steps=1, lambda_adv=0.0)
    names = []

    def build(name, *a, **k):
        names.append(name)
        arch = "mimicgan2" if "surrogate_arch=mimicgan2" in name else "mimicgan1"
        kind = "identity" if "surrogate=identity" in name else "mimic"
        cfg = small.with_(surrogate_arch=arch, surrogate=kind)
        return GANPriorDefense("mimicgan", G, D, cfg=cfg, shape=(1, 28, 28))

    monkeypatch.setattr(models, "build_defense", build)
    out = tmp_path / "t.md"
    args = ["--classes", "1", "--n", "10", "--batches", "base", "--rows", "MimicGAN"]
    assert sh.main(args + ["--options", "surrogate_arch=mimicgan2", "--out", str(out)]) == 0
    assert names == ["mimicgan[gan=no1,latent_steps=75,surrogate_steps=25,surrogate_arch=mimicgan2]"]
    text = out.read_text()
    assert "Rows run: MimicGAN. The row with `surrogate_arch=mimicgan2`." in text
    assert set(sh.read_tables([str(out)])) == {(0, 1, "MimicGAN [surrogate_arch=mimicgan2]", "base")}  # no end rows
    end = [r for r in text.splitlines() if r.startswith("| 1 ") and "max abs(A − I)" in r]
    assert len(end) == 1 and "%" in end[0]
    assert sh.main(["--classes", "1", "--n", "10", "--batches", "base", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Rows run" not in text
    assert len([r for r in text.splitlines() if r.startswith("| 1 ") and "| W " in r]) == 1  # MimicGAN's row only
    d = build("mimicgan[surrogate=identity]")
    assert sh.surrogate_end(d) is None  # nothing purified yet
    d.purify(torch.rand(2, 1, 28, 28), seed=0)
    assert sh.surrogate_end(d) is None  # f̂ = I learns nothing


def test_summarize_sets_a_row_run_with_options_against_the_spec_rows(sh, tmp_path):
    header = ["left out", "r", "b", "p", "n", "a", "c"]
    spec = {0: (0.8, 0.9), 1: (0.1, 0.2), 2: (0.6, 0.5)}  # class: (f̂ = I, MimicGAN)
    other = {0: 0.95, 1: 0.1, 2: 0.7}  # MimicGAN with the option
    lines = [
        [k, row, "base", 8, 92, f"{v:.3f}", "—"] for k, vs in spec.items() for row, v in zip(sh.ROWS, vs, strict=True)
    ]
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("Command: x. GANs gan-mnist-paper-noK (class K left out).\n\n" + "\n".join(sh.markdown(lines, header)))
    lines = [[k, "MimicGAN", "base", 8, 92, f"{v:.3f}", "—"] for k, v in other.items()]
    caption = "Command: x. GANs gan-mnist-paper-noK (class K left out). Rows run: MimicGAN. The row with `arch=2`."
    b.write_text(caption + "\n\n" + "\n".join(sh.markdown(lines, header)))
    got = sh.read_tables([str(a), str(b)])  # the same seed, classes, row and batch: told apart by the option
    assert got[(0, 0, "MimicGAN [arch=2]", "base")] == 0.95 and got[(0, 0, "MimicGAN", "base")] == 0.9
    text = "\n".join(sh.summary(got))
    assert "base: MimicGAN − f̂ = I +0.033 on average, MimicGAN above on 2 of 3 classes" in text
    assert "base, MimicGAN [arch=2]: mean 0.583 ± 0.437 over 3 classes" in text
    assert "base: MimicGAN [arch=2] − MimicGAN +0.050 on average, MimicGAN [arch=2] above on 2 of 3 classes" in text
    assert "base: MimicGAN [arch=2] − f̂ = I +0.083 on average, MimicGAN [arch=2] above on 2 of 3 classes" in text
    c = tmp_path / "c.md"
    lines = [[k, "MimicGAN", "base", 8, 92, f"{v - 0.1:.3f}", "—"] for k, v in other.items()]
    c.write_text(caption.replace("arch=2", "arch=3") + "\n\n" + "\n".join(sh.markdown(lines, header)))
    text = "\n".join(sh.summary(sh.read_tables([str(a), str(b), str(c)])))
    assert "base: MimicGAN [arch=3] − MimicGAN [arch=2] -0.100 on average, MimicGAN [arch=3] above on 0 of 3" in text
    assert "MimicGAN [arch=2] − MimicGAN [arch=3]" not in text  # each pair once
    b.write_text(caption.replace("The row with", "Both rows with") + "\n\n" + "\n".join(sh.markdown(lines, header)))
    assert (0, 1, "MimicGAN [arch=2]", "base") in sh.read_tables([str(b)])  # the caption of two rows reads alike


def test_gan_provenance_names_a_recipe_other_than_the_presets(sh, tmp_path, monkeypatch):
    """A run on GANs trained for more epochs says so in its caption (read from the zoo's manifests), with the
    epoch each kept; GANs trained as the preset says add nothing but their kept epochs. (A zoo of its own: the
    session's zoo is read by the other tests' captions.)"""
    from conftest import save_gan, stand_in_gan

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "own-home"))

    from defbench.harness import zoo

    G, D = stand_in_gan("mnist")
    for k in (1, 4):
        mid = save_gan(G, D, "mnist", tag=f"no{k}", preset="paper")
        manifest = zoo.manifest_or_none(mid)
        assert sh.gan_provenance([k], "paper", 0)[0] == ""  # the preset's recipe: no label
        manifest["config"]["epochs"] = 4
        manifest["metrics"] = {"best_epoch": k - 1 if k > 1 else 4, "epochs_done": 4}
        state, _ = zoo.load(mid)
        zoo.save(mid, state, manifest)
    assert sh.gan_provenance([1, 4], "paper", 0) == ("epochs=4", "1: 4/4, 4: 3/4")


def test_summarize_tells_rows_on_other_gans_apart_and_pairs_the_classes_they_hold(sh, tmp_path):
    """Tables on GANs trained other than the preset (caption: GANs trained with `epochs=4`) are rows of their own,
    and such a run of some classes only is paired with the spec's rows over the classes both hold."""
    header = ["left out", "r", "b", "p", "n", "a", "c"]
    spec = {0: (0.8, 0.9), 1: (0.1, 0.2), 2: (0.6, 0.5)}  # class: (f̂ = I, MimicGAN), GANs as the preset says
    a = tmp_path / "a.md"
    lines = [
        [k, row, "base", 8, 92, f"{v:.3f}", "—"] for k, vs in spec.items() for row, v in zip(sh.ROWS, vs, strict=True)
    ]
    a.write_text("Command: x. GANs gan-mnist-paper-noK (class K left out).\n\n" + "\n".join(sh.markdown(lines, header)))
    longer = {1: (0.3, 0.6), 2: (0.7, 0.9)}  # classes 1 and 2 only, on GANs trained 4 epochs
    b = tmp_path / "b.md"
    lines = [
        [k, row, "base", 8, 92, f"{v:.3f}", "—"] for k, vs in longer.items() for row, v in zip(sh.ROWS, vs, strict=True)
    ]
    caption = "Command: x. GANs gan-mnist-paper-noK (class K left out; GANs trained with `epochs=4` (the preset "
    b.write_text(
        caption
        + "otherwise); kept epoch / epochs trained: 1: 4/4, 2: 2/4).\n\n"
        + "\n".join(sh.markdown(lines, header))
    )
    got = sh.read_tables([str(a), str(b)])
    assert got[(0, 1, "MimicGAN [GAN epochs=4]", "base")] == 0.6 and got[(0, 1, "MimicGAN", "base")] == 0.2
    text = "\n".join(sh.summary(got))
    assert "base: MimicGAN − f̂ = I +0.033 on average, MimicGAN above on 2 of 3 classes" in text  # the spec's, all 3
    assert "base, f̂ = I [GAN epochs=4]: mean 0.500 ± 0.283 over 2 classes (classes 1, 2)" in text
    assert "base: MimicGAN [GAN epochs=4] − MimicGAN +0.400 on average, MimicGAN [GAN epochs=4] above on 2 of 2" in text
    assert "base: MimicGAN [GAN epochs=4] − f̂ = I [GAN epochs=4] +0.250 on average" in text  # within the longer GANs
    assert "f̂ = I [GAN epochs=4] − MimicGAN [GAN epochs=4]" not in text
    opts = b.read_text().replace("2: 2/4).", "2: 2/4). Both rows with `arch=2`.")
    b.write_text(opts)
    assert (0, 1, "MimicGAN [GAN epochs=4; arch=2]", "base") in sh.read_tables([str(b)])


def test_summarize_a_run_of_one_row(sh, tmp_path):
    """Tables of the f̂ = I row alone (``--rows 'f̂ = I'``, with and without an option) give that row's mean and
    the option row against it (the summary printed nothing for them once); a row holding some classes only says
    so instead of a mean."""
    header = ["left out", "r", "b", "p", "n", "a", "c"]
    spec, other = {0: 0.8, 1: 0.1, 4: 0.6}, {0: 0.9, 1: 0.1, 4: 0.5}
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    caption = "Command: x. GANs gan-mnist-paper-noK (class K left out). Rows run: f̂ = I."
    a.write_text(
        caption
        + "\n\n"
        + "\n".join(sh.markdown([[k, "f̂ = I", "base", 8, 92, v, "—"] for k, v in spec.items()], header))
    )
    lines = [[k, "f̂ = I", "base", 8, 92, v, "—"] for k, v in other.items()]
    b.write_text(caption + " The row with `lr=5e-3`.\n\n" + "\n".join(sh.markdown(lines, header)))
    text = "\n".join(sh.summary(sh.read_tables([str(a), str(b)])))
    assert "base, f̂ = I: mean 0.500 ± 0.361 over 3 classes" in text
    assert "base: f̂ = I [lr=5e-3] − f̂ = I +0.000 on average, f̂ = I [lr=5e-3] above on 1 of 3 classes" in text
    assert "MimicGAN" not in text  # not run: nothing said of it
    a.write_text(caption + "\n\n" + "\n".join(sh.markdown([[0, "f̂ = I", "base", 8, 92, 0.8, "—"]], header)))
    text = "\n".join(sh.summary(sh.read_tables([str(a), str(b)])))
    assert "base, f̂ = I: 1 of 3 classes only (classes 0), no mean over classes" in text
    assert "base: f̂ = I [lr=5e-3] − f̂ = I +0.100 on average, f̂ = I [lr=5e-3] above on 1 of 1 classes" in text


def test_summarize_keeps_going_past_a_cell_without_auc_and_compares_option_rows_across_seeds(sh, tmp_path):
    """A "—" AUC (a batch without left-out images) is named and left out instead of aborting the summary; a row
    run with options on two GAN seeds gets the seed comparison the spec rows get."""
    header = ["left out", "r", "b", "p", "n", "a", "c"]
    paths = []
    for seed, aucs in ((0, {0: 0.8, 1: 0.1, 2: "—"}), (1, {0: 0.5, 1: 0.3, 2: 0.6})):
        name = "gan-mnist-paper-noK" if seed == 0 else f"gan-mnist-paper-s{seed}-noK"
        lines = [[k, "f̂ = I", "base", 8, 92, v, "—"] for k, v in aucs.items()]
        paths.append(tmp_path / f"s{seed}.md")
        caption = f"Command: x. GANs {name} (class K left out). Rows run: f̂ = I. The row with `lr=5e-3`."
        paths[-1].write_text(caption + "\n\n" + "\n".join(sh.markdown(lines, header)))
    text = "\n".join(sh.summary(sh.read_tables([str(p) for p in paths])))
    assert "- class 2, base, f̂ = I [lr=5e-3]: no AUC (a side of the batch empty), left out of what follows" in text
    assert "base, f̂ = I [lr=5e-3], GAN seed 1 − seed 0 over the 2 classes both hold: the mean moves by -0.050" in text
    assert sh.main(["--summarize", *map(str, paths)]) == 0


def test_class_rows_interval_is_hanley_mcneil_with_the_left_out_class_positive(sh):
    """12 images, class 1 (3 positives) against 9 negatives: the cell's interval is Hanley–McNeil's with n_pos = 3
    and n_neg = 9, worked out here by hand (the two counts swapped give 0.17–0.94)."""
    from fractions import Fraction as F

    base = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 14])  # labels 0 1 2 1 3 1 4 5 6 7 8 9
    err = np.array([1.0, 2.5, 2.0, 5.5, 3.0, 8.5, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])  # negatives 1..9
    score = {("base", r): err for r in sh.ROWS}
    rows = sh.class_rows(1, {"base": base}, score, LABELS)
    # positives 2.5, 5.5, 8.5 rank above 2, 5 and 8 of the 9 negatives: AUC 15 / 27
    a = F(15, 27)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (3 - 1) * (q1 - a * a) + (9 - 1) * (q2 - a * a)) / (9 * 3)
    se = float(var) ** 0.5
    lo, hi = float(a) - 1.96 * se, float(a) + 1.96 * se
    assert (round(lo, 2), round(hi, 2)) == (0.16, 0.95)
    assert rows[0][3:6] == [3, 9, "0.556 (0.16–0.95)"]


def test_summary_p_values_are_two_sided_exact_wilcoxon_over_the_pairs(sh, tmp_path):
    """Four classes: MimicGAN − f̂ = I is +0.1, +0.2, +0.3, +0.4 on base (all above: exact two-sided p = 2 / 2^4)
    and +0.05, −0.1, +0.15, +0.02 on share (rank sum of the negative 3: p = 2 · 5/16); share − base is negative on
    every class with distinct sizes: p = 2 / 16 again."""
    header = ["left out", "r", "b", "p", "n", "a", "c"]
    base_d, share_d = (0.1, 0.2, 0.3, 0.4), (0.05, -0.1, 0.15, 0.02)
    lines = []
    for k in range(4):
        lines += [
            [k, "f̂ = I", "base", 8, 92, "0.500", "0"],
            [k, "MimicGAN", "base", 8, 92, f"{0.5 + base_d[k]:.3f}", "1"],
        ]
        lines += [[k, "f̂ = I", "share", 36, 64, "0.400", "0"]]
        lines += [[k, "MimicGAN", "share", 36, 64, f"{0.4 + share_d[k]:.3f}", "1"]]
    path = tmp_path / "t.md"
    path.write_text("Command: x\n\n" + "\n".join(sh.markdown(lines, header)))
    text = "\n".join(sh.summary(sh.read_tables([str(path)])))
    assert "base: MimicGAN − f̂ = I +0.250 on average, MimicGAN above on 4 of 4 classes; paired Wilcoxon " in text
    assert f"signed-rank p = {2 / 16:.2g}\n" in text  # base
    assert f"MimicGAN above on 3 of 4 classes; paired Wilcoxon signed-rank p = {2 * 5 / 16:.2g}\n" in text  # share
    assert (
        f"share − base of that difference: -0.220 on average, larger on 0 of 4 classes; Wilcoxon p = {2 / 16:.2g}"
        in text
    )


def test_main_uses_the_paper_runs_draw_seeds_and_defaults(sh, tmp_path, monkeypatch):
    """A run reproduces the paper run's cell: the MNIST *test* set, base = eval_indices(n, --seed), the share
    batch's extra class-K images drawn with --seed, and each purification at batch 0 / repeat 0's seed
    (cell seed · 100003 + 0) · 7. Defaults: n 100, share 0.36."""
    import json

    import torch

    from defbench.datasets import ImageData
    from defbench.harness import data, models

    images = (torch.rand(200, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    labels = torch.arange(200) % 4
    fake_set = ImageData("mnist", "test", labels, "test", images=images)
    splits, seeds = [], []
    monkeypatch.setattr(data, "load_dataset", lambda name, split, *a, **k: splits.append(split) or fake_set)

    class Recording(_Fake):
        def purify(self, x, seed=0):
            seeds.append(seed)
            return super().purify(x, seed)

    monkeypatch.setattr(models, "build_defense", lambda name, *a, **k: Recording("identity" not in name))
    save = tmp_path / "s.json"
    assert sh.main(["--classes", "1", "--save", str(save)]) == 0  # defaults: n 100, share 0.36, seed 0
    saved = json.loads(save.read_text())["1"]
    assert splits == ["test"]
    assert saved["base"]["indices"] == fake_set.eval_indices(100, 0).tolist()
    assert int((labels[saved["share"]["indices"]] == 1).sum()) == 36  # round(0.36 · 100)
    assert set(seeds) == {0}
    seeds.clear()
    assert sh.main(["--classes", "1", "--n", "20", "--share", "0.5", "--seed", "3", "--save", str(save)]) == 0
    saved = json.loads(save.read_text())["1"]
    base = np.asarray(fake_set.eval_indices(20, 3))
    assert saved["base"]["indices"] == base.tolist()
    lab = labels.numpy()
    pos = base[lab[base] == 1]
    rest = np.setdiff1d(np.flatnonzero(lab == 1), pos)
    extra = np.random.default_rng(3).choice(rest, 10 - len(pos), replace=False)  # the seeded draw of the rest
    slots = np.flatnonzero(lab[base] != 1)[-len(extra) :]  # the last negatives
    want = base.copy()
    want[slots] = extra
    assert saved["share"]["indices"] == want.tolist()
    assert seeds == [(3 * 100_003 + 0) * 7] * 4  # two rows x two batches
