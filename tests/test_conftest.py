"""The suite's own guard: a SIGINT / SIGTERM handler a test leaves behind does not reach the next test."""

from __future__ import annotations

import signal

from conftest import restored_signal_handlers


def _stray(signum, frame):  # pragma: no cover - never delivered
    pass


def test_a_handler_left_inside_is_replaced_by_the_one_before():
    before = signal.getsignal(signal.SIGTERM)
    with restored_signal_handlers():
        signal.signal(signal.SIGTERM, _stray)
        assert signal.getsignal(signal.SIGTERM) is _stray
    assert signal.getsignal(signal.SIGTERM) is before


def test_unchanged_handlers_are_not_reinstalled(monkeypatch):
    calls = []
    monkeypatch.setattr(signal, "signal", lambda *a: calls.append(a))
    with restored_signal_handlers():
        pass
    assert calls == []


def test_restored_after_an_exception_inside():
    before = signal.getsignal(signal.SIGINT)
    try:
        with restored_signal_handlers():
            signal.signal(signal.SIGINT, _stray)
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert signal.getsignal(signal.SIGINT) is before


def test_leaves_a_handler_behind():
    signal.signal(signal.SIGTERM, _stray)  # the autouse fixture must undo this before the next test


def test_the_next_test_does_not_see_it():
    assert signal.getsignal(signal.SIGTERM) is not _stray


def test_stand_in_gans_load_without_a_recipe_warning(tmp_path, monkeypatch):
    """The suite's stand-in GANs name their preset's recipe, so the stale-recipe warning (tested where it fires in
    test_zoo and test_training) stays out of the suite's log; before, their empty config made it fire on every load."""
    import warnings

    from conftest import save_gan, stand_in_gan

    from defbench.harness.models import get_gan

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path))
    G, D = stand_in_gan("mnist", 0)
    for tag in ("", "sub80-s7", "no3"):
        save_gan(G, D, "mnist", tag)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            get_gan("mnist", "quick", train_missing=False, progress=False, tag=tag)
        assert not [w for w in caught if "another recipe" in str(w.message)], tag
