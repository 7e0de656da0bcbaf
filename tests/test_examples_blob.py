"""The example images of a cell (harness/examples.py) on hand-made tensors (mutation audit, session 48): which
image each prediction is made on, the [0, 1] range of what is stored, a cell smaller than k, what load_examples
refuses, and a torch.save that fails. No runner, no zoo."""

from __future__ import annotations

import warnings

import pytest
import torch

from defbench.harness import examples as ex


class _Brightness(torch.nn.Module):
    """A classifier whose class is the image's mean brightness times 8, rounded: 0 for black, 8 for white."""

    def forward(self, x):
        cls = torch.round(x.flatten(1).mean(1) * 8).long().clamp(0, 9)
        return torch.nn.functional.one_hot(cls, 10).float()


def _images(n: int = 3):
    x = torch.zeros(n, 1, 4, 4)  # black: class 0
    x_in = torch.full((n, 1, 4, 4), 1.0)  # white: class 8
    x_hat = torch.full((n, 1, 4, 4), 0.5)  # grey: class 4
    return x, x_in, x_hat


def test_each_prediction_is_made_on_its_own_image():
    """pred_clean on x (black: 0), pred_in on the attacked input (white: 8), pred_hat on the purification (grey:
    4); the labels and indices are the cell's first k."""
    x, x_in, x_hat = _images()
    blob = ex.examples_blob(_Brightness(), x, x_in, x_hat, [5, 6, 7], [40, 41, 42], k=2)
    assert blob["pred_clean"].tolist() == [0, 0]
    assert blob["pred_in"].tolist() == [8, 8]
    assert blob["pred_hat"].tolist() == [4, 4]
    assert blob["labels"].tolist() == [5, 6] and blob["indices"].tolist() == [40, 41]


def test_images_are_stored_in_the_unit_range():
    """An input that strays outside [0, 1] (1.5, −0.5) is stored clipped to it, as float16."""
    x, x_in, x_hat = _images(2)
    x_in[0, 0, 0, 0], x_hat[0, 0, 0, 0] = 1.5, -0.5
    blob = ex.examples_blob(_Brightness(), x, x_in, x_hat, [0, 1])
    assert blob["x_in"].dtype == torch.float16
    assert blob["x_in"][0, 0, 0, 0].item() == 1.0 and blob["x_hat"][0, 0, 0, 0].item() == 0.0


def test_a_cell_smaller_than_k_keeps_all_its_images_and_reads_back(tmp_path):
    """Two images at k = 4 (no indices given): two of everything, indices 0 and 1, and load_examples accepts it."""
    x, x_in, x_hat = _images(2)
    blob = ex.examples_blob(_Brightness(), x, x_in, x_hat, [3, 4])
    assert blob["x"].shape == (2, 1, 4, 4) and blob["indices"].tolist() == [0, 1] and blob["labels"].tolist() == [3, 4]
    ex.save_examples_blob(tmp_path, "cell", blob)
    back = ex.load_examples(tmp_path, "cell")
    assert back is not None and back["indices"].tolist() == [0, 1]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda b: b.pop("pred_hat"),  # a field missing
        lambda b: b.__setitem__("labels", [5, 6]),  # not a tensor
        lambda b: b.__setitem__("x_hat", b["x_hat"][:, :, :2]),  # another image shape
        lambda b: b.__setitem__("pred_in", b["pred_in"][:1]),  # one prediction for two images
    ],
    ids=["missing", "not-a-tensor", "shape", "length"],
)
def test_load_examples_refuses_a_malformed_file_and_reads_a_sound_one(tmp_path, spoil):
    x, x_in, x_hat = _images(2)
    blob = ex.examples_blob(_Brightness(), x, x_in, x_hat, [5, 6], [40, 41])
    ex.save_examples_blob(tmp_path, "sound", blob)
    assert ex.load_examples(tmp_path, "sound") is not None
    spoil(blob)
    ex.write_examples(ex.examples_path(tmp_path, "bad"), blob)
    assert ex.load_examples(tmp_path, "bad") is None
    ex.examples_path(tmp_path, "torn").write_bytes(b"PK\x03\x04 not a torch file")
    assert ex.load_examples(tmp_path, "torn") is None


def test_a_failing_torch_save_is_a_warning_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """torch.save raising RuntimeError (PyTorch's zip writer on a full disk) after writing part of the file: the
    write is a warning and None, the partial temporary file is removed, the target never appears."""

    def torn(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04")
        raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed writing file data/0")

    x, x_in, x_hat = _images(2)
    blob = ex.examples_blob(_Brightness(), x, x_in, x_hat, [5, 6])
    monkeypatch.setattr(ex.torch, "save", torn)
    with pytest.warns(UserWarning, match="could not save the example images of cell abc: .*PytorchStreamWriter"):
        assert ex.save_examples_blob(tmp_path, "abc", blob) is None
    assert list((tmp_path / ex.EXAMPLES_DIR).iterdir()) == []
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ex.save_examples_blob(tmp_path, "abc", blob) == ex.examples_path(tmp_path, "abc")
    assert [p.name for p in (tmp_path / ex.EXAMPLES_DIR).iterdir()] == ["abc.pt"]
