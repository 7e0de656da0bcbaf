"""Library attacks behind one interface, on the tiny Fashion-MNIST classifier."""

import copy

import pytest
import torch

from defbench import DefbenchError
from defbench.attacks import get_attack
from defbench.attacks.registry import BUILTIN

FAST = {
    "bim": {"steps": 5},
    "pgd": {"steps": 5},
    "cw": {"steps": 10, "binary_search_steps": 2},
    "deepfool": {"steps": 10},
    "universal-fgsm": {"alpha": 4.0},
    "universal-art": {"max_iter": 1, "fit_images": 16},
    "square": {"n_queries": 300},
}


#: the attacks that break the tiny classifier at these settings (ε 0.3 where bounded): measured 2026-12-05 on its
#: 16 images (13 right when clean), FGSM 1 left, BIM / PGD / DeepFool 0, CW 2; the universal perturbations, fitted
#: on few images, leave 4 and 9
STRONG = ("fgsm", "bim", "pgd", "cw", "deepfool")


@pytest.mark.parametrize("name", [n for n in BUILTIN if n != "autoattack" and BUILTIN[n].family != "corruption"])
def test_attack_shapes_bounds_and_strength(name, tiny_classifier, fmnist_images):
    model, _ = tiny_classifier
    x, y = fmnist_images
    atk = get_attack(name, "fmnist", **FAST.get(name, {}))
    x_adv = atk(model, x, y)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    if atk.bounded:
        assert (x_adv - x).abs().max() <= atk.eps + 1e-5
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean()
        adv = (model(x_adv).argmax(1) == y).float().mean()
    assert adv < clean or clean == 0, f"{name} did not reduce accuracy ({clean:.2f} -> {adv:.2f})"
    if name in STRONG:  # one flipped image of 16 passes the check above; these attacks break the network
        assert adv <= 0.25, f"{name} left {adv:.2f} of the images right (clean {clean:.2f})"
    cfg = atk.config()
    assert {"label", "family", "iterative", "bounded", "eps"} <= set(cfg)


def test_autoattack_breaks_the_classifier(tiny_classifier, fmnist_images):
    """AutoAttack at ε = 0.3 on four images the tiny classifier gets right: every adversarial image is
    misclassified, changed and within the ε-ball. Catches an AutoAttack that returns x (or a perturbation too weak
    to matter); at this ε its first attack (APGD-CE) breaks all four, so the slower ones never run (seconds; at
    ε = 0.1 a third of the images survive and FAB and Square take minutes)."""
    model, _ = tiny_classifier
    x, y = fmnist_images
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().flatten()[:4]
    assert len(right) == 4
    x, y = x[right], y[right]
    x_adv = get_attack("autoattack", "fmnist", eps=0.3)(model, x, y)
    assert (x_adv - x).abs().max() <= 0.3 + 1e-5 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all(), "AutoAttack left correctly classified images"


def test_universal_is_one_vector_for_the_whole_set(tiny_classifier, fmnist_images):
    model, _ = tiny_classifier
    x, y = fmnist_images
    atk = get_attack("universal-fgsm", "fmnist", alpha=2.0)
    atk.prepare(model, x[:8], y[:8])
    nu = atk._nu.expand(4, -1, -1, -1)
    for xb, yb in ((x[8:12], y[8:12]), (x[12:16], y[12:16])):
        x_adv = atk(model, xb, yb)
        unclipped = (x_adv > 1e-6) & (x_adv < 1 - 1e-6)
        assert unclipped.float().mean() > 0.3
        assert torch.allclose((x_adv - xb)[unclipped], nu[unclipped], atol=1e-6)


def test_universal_refits_for_another_model_even_at_a_reused_address(tiny_classifier, fmnist_images, monkeypatch):
    """ν was kept for id(model); a freed model's id is reused by the next object (gan-aware builds a latent model
    per batch), which then got the old ν. Simulated by an id() that gives every model the same address: another
    model still gets its own fit, the model it was fitted on keeps it."""
    from defbench.attacks import universal

    model, _ = tiny_classifier
    x, y = fmnist_images
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1)
    fresh = get_attack("universal-fgsm", "fmnist", alpha=2.0)
    fresh.prepare(other, x[:8], y[:8])
    monkeypatch.setattr(universal, "id", lambda _: 1, raising=False)
    atk = get_attack("universal-fgsm", "fmnist", alpha=2.0)
    atk.prepare(model, x[:8], y[:8])
    nu_model = atk._nu.clone()
    assert not torch.equal(nu_model, fresh._nu)
    atk(other, x[:8], y[:8])
    assert torch.equal(atk._nu, fresh._nu)
    atk(other, x[8:12], y[8:12])
    assert torch.equal(atk._nu, fresh._nu)  # the same model: no refit on its next batch


def test_universal_fgsm_is_the_mean_fgsm_step_over_its_first_images():
    """ν = α · mean over the first N (``images``, the paper's 15) images of FGSM's step, by hand: the rest of the
    batch plays no part in it."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    x, y = torch.rand(40, 1, 4, 4), torch.randint(0, 3, (40,))
    atk = get_attack("universal-fgsm", "mnist", alpha=2.0)
    atk.prepare(model, x, y)
    xs = x[:15].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xs), y[:15]), xs)
    step = ((x[:15] + 0.3 * g.sign()).clamp(0, 1) - x[:15]).mean(0, keepdim=True)
    assert torch.allclose(atk._nu, 2.0 * step, atol=1e-6)


def test_targeted_universal_perturbation_pushes_towards_its_class(tiny_classifier, fmnist_images):
    """MimicGAN §4.3's targeted form: ν is the mean of FGSM's steps towards class K, so adding it moves
    predictions to K; the untargeted ν (the default) does not favour K."""
    model, _ = tiny_classifier
    x, y = fmnist_images
    k = 0  # T-shirt/top: none of these 16 images is predicted as it
    with torch.no_grad():
        before = (model(x).argmax(1) == k).float().mean()
    share = {}
    for target in (k, None):
        atk = get_attack("universal-fgsm", "fmnist", alpha=2.0, target=target)
        atk.prepare(model, x, y)
        with torch.no_grad():
            share[target] = float((model(atk(model, x, y)).argmax(1) == k).float().mean())
        assert torch.isfinite(atk._nu).all() and atk._nu.abs().max() <= 2.0 * 0.3 + 1e-6
    assert share[k] >= before + 0.5, (float(before), share)
    assert share[k] > share[None] + 0.5, share
    assert "targeted: class 1" in get_attack("universal-fgsm", "fmnist", target=1).label
    for bad in (10, -1, 1.5, True):
        with pytest.raises(DefbenchError, match="target"):
            get_attack("universal-fgsm", "fmnist", target=bad)


def test_bad_attack_arguments():
    with pytest.raises(DefbenchError, match="outside \\[0, 1\\]"):
        get_attack("fgsm", "fmnist", eps=2.0)
    with pytest.raises(DefbenchError, match="valid: random_start, step, steps"):
        get_attack("pgd", "fmnist", iterations=3)
    with pytest.raises(DefbenchError, match="choose one of"):
        get_attack("jsma", "fmnist")


def test_paper_default_eps():
    assert get_attack("fgsm", "mnist").eps == 0.3
    assert get_attack("fgsm", "fmnist").eps == 0.3
    assert abs(get_attack("fgsm", "cifar10").eps - 8 / 255) < 1e-9
    assert get_attack("fgsm", "imagenet").eps == 0.05
    assert get_attack("cw", "fmnist").eps is None


@pytest.mark.parametrize("name, cls, alpha", [("pgd", "PGD", 0.01), ("bim", "BIM", 0.05)])
def test_default_step_sizes_are_cleverhans(monkeypatch, name, cls, alpha):
    """At ε = 0.3 with their default steps PGD and BIM take cleverhans' step sizes (MadryEtAl 0.01 over 40 steps,
    BasicIterativeMethod 0.05 over 10), which torchattacks is handed as alpha."""
    import torchattacks

    seen = {}
    orig = getattr(torchattacks, cls).__init__

    def spy(self, *a, **k):
        seen["alpha"] = k.get("alpha")
        orig(self, *a, **k)

    monkeypatch.setattr(getattr(torchattacks, cls), "__init__", spy)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    get_attack(name, "mnist")(model, torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))
    assert seen["alpha"] == pytest.approx(alpha)


def test_corruptions_of_mimicgan_fig4b(fmnist_images):
    """Model-independent corruptions: binary at each image's median, 70% of pixels dropped, blur + negative."""
    x, y = fmnist_images
    xb = get_attack("binarize", "fmnist").corrupt(x)
    assert set(xb.unique().tolist()) <= {0.0, 1.0}
    med = x.flatten(1).quantile(0.5, dim=1).view(-1, 1, 1, 1)
    assert torch.equal(xb, (x >= med).float())  # ties=white: a median-0 background turns white
    xs = get_attack("binarize", "fmnist", ties="black").corrupt(x)
    assert torch.equal(xs, (x > med).float()) and xs.mean() < xb.mean()
    with pytest.raises(DefbenchError, match="ties"):
        get_attack("binarize", "fmnist", ties="grey")
    xg = get_attack("binarize", "fmnist", scope="batch", ties="black").corrupt(x)  # one median over the call
    assert torch.equal(xg, (x > x.flatten().quantile(0.5)).float())
    assert "scope" not in get_attack("binarize", "fmnist").config()["params"]  # the default keeps the stored key
    assert get_attack("binarize", "fmnist", scope="batch").config()["params"]["scope"] == "batch"  # other: keyed
    with pytest.raises(DefbenchError, match="scope must be 'image' or 'batch'"):
        get_attack("binarize", "fmnist", scope="dataset")
    torch.manual_seed(0)
    xd = get_attack("drop-pixels", "fmnist").corrupt(x)
    dropped = ((xd == 0) & (x > 0)).sum() / (x > 0).sum()
    assert 0.65 < float(dropped) < 0.75
    assert torch.equal(xd[xd != 0], x[xd != 0])
    ones = torch.ones(4, 1, 28, 28)
    per_image = get_attack("drop-pixels", "fmnist").corrupt(ones)
    assert not torch.equal(per_image[0], per_image[1])  # a fresh mask per image by default
    shared = get_attack("drop-pixels", "fmnist", mask="batch").corrupt(ones)
    assert all(torch.equal(shared[0], shared[k]) for k in range(1, 4))  # one mask for the whole call
    assert 0.65 < float((shared == 0).float().mean()) < 0.75
    with pytest.raises(DefbenchError, match="mask must be 'image' or 'batch'"):
        get_attack("drop-pixels", "fmnist", mask="pixel")
    xn = get_attack("blur-negative", "fmnist").corrupt(x)
    assert torch.allclose(xn.mean(), 1 - x.mean(), atol=0.02)  # blurring keeps the mean (reflect padding)
    assert xn.flatten(1).std(1).mean() < x.flatten(1).std(1).mean() * 0.7  # strongly smoothed
    with pytest.raises(DefbenchError, match="odd positive"):  # at construction, before any image is touched
        get_attack("blur-negative", "fmnist", kernel=4)
    with pytest.raises(DefbenchError, match=r"fraction must be in \[0, 1\]"):
        get_attack("drop-pixels", "fmnist", fraction=1.5)
    for name in ("binarize", "drop-pixels", "blur-negative"):
        a = get_attack(name, "fmnist")
        assert a.eps is None and a.config()["family"] == "corruption"


def test_corruptions_on_signed_pixels(fmnist_images):
    """range=signed: the corruption's arithmetic on [-1, 1] pixels (the paper's code), mapped back to [0, 1]."""
    x, _ = fmnist_images
    med = x.flatten(1).quantile(0.5, dim=1).view(-1, 1, 1, 1)
    xb = get_attack("binarize", "fmnist", range="signed").corrupt(x)
    assert torch.allclose(xb, 0.5 + 0.5 * (x >= med).float())  # 0s and 1s on [-1, 1]: mid-grey and white
    xs = get_attack("binarize", "fmnist", range="signed", ties="black").corrupt(x)
    assert torch.allclose(xs, 0.5 + 0.5 * (x > med).float())
    torch.manual_seed(0)
    xd = get_attack("drop-pixels", "fmnist", range="signed").corrupt(x)
    torch.manual_seed(0)
    xu = get_attack("drop-pixels", "fmnist").corrupt(x)  # the same seed draws the same mask under either range
    dropped = (xu == 0) & (x > 0)
    assert torch.allclose(xd[dropped], torch.full_like(xd[dropped], 0.5))  # "set them to 0": mid-grey on [-1, 1]
    assert torch.allclose(xd[~dropped & (x > 0)], x[~dropped & (x > 0)], atol=1e-6)
    xn, xnu = (get_attack("blur-negative", "fmnist", range=r).corrupt(x) for r in ("signed", "unit"))
    assert torch.allclose(xn, xnu, atol=1e-6)  # 0 − x on [-1, 1] is 1 − x on [0, 1]
    for name in ("binarize", "drop-pixels", "blur-negative"):  # the default stays out of the stored config
        assert "range" not in get_attack(name, "fmnist").config()["params"]
        assert get_attack(name, "fmnist", range="signed").config()["params"]["range"] == "signed"
        with pytest.raises(DefbenchError, match="range must be 'unit' or 'signed'"):
            get_attack(name, "fmnist", range="pm1")


def test_universal_art_fits_on_the_images_it_will_present(tiny_classifier, fmnist_images):
    """ART's search scores x + ν unclipped; the attack presents clip(x + ν), so every image the fit hands the model
    lies in [0, 1] — a purification refuses anything else, which stopped universal-art under BPDA for every defense."""
    model, _ = tiny_classifier
    x, y = fmnist_images
    seen = []

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, xb):
            seen.append((float(xb.detach().min()), float(xb.detach().max())))
            return self.net(xb)

    atk = get_attack("universal-art", "fmnist", 0.3, max_iter=1, fit_images=16)
    x_adv = atk(Recording().eval(), x, y)
    assert len(seen) > 16 and min(lo for lo, _ in seen) >= 0.0 and max(hi for _, hi in seen) <= 1.0
    assert float(atk._nu.abs().max()) <= 0.3 + 1e-6 and float((x_adv - x).abs().max()) <= 0.3 + 1e-6
    assert float(atk._nu.abs().max()) > 0.1  # it did search: ν is not zero


def test_universal_art_runs_under_bpda_behind_a_purification(tiny_classifier):
    """End to end through defbench.evaluate: universal-art under BPDA behind the median filter (which refuses pixels
    out of [0, 1]) runs, and ends within its budget."""
    import defbench

    df = defbench.evaluate(
        tiny_classifier[0].eval(),
        ["median"],
        dataset="fmnist",
        attacks=["universal-art"],
        threats=["bpda"],
        eps=0.3,
        n=16,
        batch_size=16,
        attack_params={"universal-art": {"max_iter": 1, "fit_images": 16}},
    )
    row = df[df.attack == "universal-art"].iloc[0]
    assert 0.0 <= row.accuracy <= 1.0 and row.threat == "bpda"
