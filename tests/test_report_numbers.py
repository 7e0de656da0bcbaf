"""Report numbers a mutation audit could change without a test failing (2026-12-06), each against its definition:
the worst case leaves out universal perturbations, ε budgets compare exactly, a seed count skips a seed without
a value, a pooled cell's spread is the sample std, MimicGAN-2's anomaly AUC takes the left-out class as positive."""

import math

import numpy as np
import pytest

from defbench.reports.common import eps_equal
from defbench.reports.sanity import sanity_flags
from defbench.reports.tables import robust_accuracy_table

from test_reports import attack_cfg, frac, make_row


def test_worst_case_leaves_out_universal_perturbations():
    """A universal perturbation of a family named universal-* (alpha None) is not a per-image attack: the worst
    case is the minimum over the per-image bounded attacks only (PGD's 60%), not the UAP's 50% or its images."""
    uap = make_row([i % 2 == 0 for i in range(100)], attack="uap", cfg=attack_cfg("UAP", "universal-uap", 0.3, True))
    rows = [make_row(frac(100, 100)), make_row(frac(60, 100), attack="pgd", cfg=attack_cfg("PGD", "pgd", 0.3)), uap]
    mean = robust_accuracy_table(rows).attrs["mean"]
    assert mean["invgan"]["worst case"] == pytest.approx(0.60)
    assert mean["invgan"]["UAP"] == pytest.approx(0.50)  # still in the table, as its own row


def test_eps_budgets_compare_exactly():
    """Two ε's are one budget only up to float rounding: PGD at 0.3 leaving 30% against FGSM at 0.25 leaving 0% is
    no sign of gradient masking (different budgets); at one budget it is."""
    assert eps_equal(0.3, 0.3 + 1e-12) and eps_equal(8 / 255, 0.03137254901960784)
    assert not eps_equal(0.3, 0.25) and not eps_equal(0.3, 0.29) and not eps_equal(None, 0.3)

    def rows(fgsm_eps):
        return [
            make_row(frac(100, 100), defense="none"),
            make_row(frac(30, 100), defense="none", attack="pgd", cfg=attack_cfg("PGD", "pgd", 0.3, True)),
            make_row(frac(0, 100), defense="none", attack="fgsm", cfg=attack_cfg("FGSM", "fgsm", fgsm_eps, False)),
        ]

    masking = lambda flags: [f for f in flags if "masking" in f]  # noqa: E731
    assert not masking(sanity_flags(rows(0.25)))
    assert masking(sanity_flags(rows(0.3)))


def test_seed_count_skips_seeds_without_a_value():
    """A cell with a value on seed 0 and none (n/a) on seed 1 is one seed's value: the table says 1 seed, not 2."""
    from defbench.reports.tables import _frames

    _, mean, std, nseeds = _frames({("a", "c"): {0: 0.8, 1: math.nan}}, ["a"], ["c"], {"c": "c"}, 1.0, 4)
    assert nseeds.iloc[0, 0] == 1 and mean.iloc[0, 0] == pytest.approx(0.8)


def test_pooled_cell_spread_is_the_sample_std():
    """MimicGAN-2's ± over 3 GANs or 10 classes: the sample standard deviation (ddof 1), as the paper's ± reads."""
    from defbench.reports.paper import pooled_value

    class Mean:
        how = "mean"

    ours, n, std, _ = pooled_value(Mean, [(50.0, 100, (100, 100)), (60.0, 100, (100, 100)), (70.0, 100, (100, 100))])
    assert ours == pytest.approx(60.0) and n == 100
    assert std == pytest.approx(float(np.std([50.0, 60.0, 70.0], ddof=1))) == pytest.approx(10.0)


def test_anomaly_auc_takes_the_left_out_class_as_positive():
    """MimicGAN-2 §5.3: a GAN trained without class k projects class k's images worse, so their projection errors
    are the positives: errors 0.9 / 0.8 on the two images of class 1 against 0.1 / 0.2 on the others is AUC 1."""
    from defbench.reports.paper import row_anomaly_auc

    row = {"labels": [0, 0, 1, 1], "extra": {"projection_error": [0.1, 0.2, 0.9, 0.8]}}
    assert row_anomaly_auc(row, 1) == pytest.approx(1.0)
    assert row_anomaly_auc(row, 0) == pytest.approx(0.0)


@pytest.mark.parametrize("successes, noted", [(9, True), (10, False)])
def test_few_positives_note_is_under_ten(successes, noted):
    """The detection table names cells with fewer than 10 positives (successful adversarial examples): 9 is named,
    10 is not."""
    from defbench.reports.tables import detection_auc_table

    n = 20
    clean = make_row(frac(n, n), scores=[0.1] * n)
    attacked = make_row(  # white-box: a success is the defended model's error
        frac(n - successes, n), attack="pgd", threat="bpda", cfg=attack_cfg("PGD", "pgd", 0.3), scores=[0.9] * n
    )
    notes = " ".join(detection_auc_table([clean, attacked]).attrs["notes"])
    assert ("fewer than 10 positives" in notes) == noted, notes


def test_in_ci_includes_the_intervals_ends():
    """'in CI' means the paper's value lies in our closed 95% interval: at either end it does."""
    from defbench.reports.paper import _verdict

    assert _verdict(62.0, -12.0, 40.0, 62.0, "accuracy") == "in CI"  # ours 50, paper at the top end
    assert _verdict(40.0, 10.0, 40.0, 62.0, "accuracy") == "in CI"  # paper at the bottom end
    assert _verdict(62.5, -12.5, 40.0, 62.0, "accuracy") == "no"


def test_detection_scores_shorter_than_the_images_are_refused():
    """A row whose detection scores are fewer than its images (a user's row; the store refuses such rows on read)
    raises instead of pairing the scores it has with the first images and leaving the rest out of the AUC."""
    from defbench.reports.common import detection_auc, protocol_scores

    clean = make_row([True] * 6, scores=[0.1, 0.2, 0.3, 0.1, 0.2, 0.3], indices=list(range(6)))
    attacked = make_row(
        [False] * 6, attack="fgsm", threat="bpda", scores=[0.9, 0.8, 0.7, 0.9, 0.8, 0.7], indices=list(range(6))
    )
    neg, pos = protocol_scores(clean, attacked)  # silent on whole rows: every image on each side
    assert (len(neg), len(pos)) == (6, 6)
    short = dict(attacked, scores=attacked["scores"][:4])
    with pytest.raises(ValueError):
        protocol_scores(clean, short)
    sub = dict(short, indices=[0, 1, 2, 3], labels=attacked["labels"][:4])  # a subset of the clean images
    clean_short = dict(clean, scores=clean["scores"][:5])
    assert detection_auc(clean, sub) == 1.0
    with pytest.raises(ValueError):  # five clean scores for six clean indices: no subset is read from them
        detection_auc(clean_short, sub)
