"""What identifies a user's function, object and weights (:mod:`defbench.harness.identity`), pair by pair: two
purifiers that compute different images must have different identities (else a store reuses one's cells for the
other), checked on a fixed input; the same purifier built twice has one identity."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from defbench.api import CallableDefense
from defbench.harness.identity import code_sha256, methods_sha256, weights_sha256

LEVEL = 0.5  # read by a lambda nested in by_nested_global only

X = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)


def cfg(fn) -> dict:
    return CallableDefense(fn).config()


def differ(a, b) -> None:
    """``a`` and ``b`` purify X differently, so their configs (part of every cell's key) must differ."""
    assert not torch.equal(a(X), b(X))
    assert cfg(a) != cfg(b)


def test_constants_in_the_code_count():
    """``x * 0.25`` and ``x * 0.5`` have the same bytecode; only their constants tell them apart."""
    differ(lambda x: (x * 4).round() / 4, lambda x: (x * 8).round() / 8)


def test_attribute_and_method_names_in_the_code_count():
    """``x.sigmoid()`` and ``x.tanh()`` differ only in the name the bytecode loads."""
    differ(lambda x: x.sigmoid(), lambda x: x.tanh())


def _thresh_first(t, x):
    return (x > t).float()


def _below_first(t, x):
    return (x < t).float()


def test_positional_partial_arguments_count():
    differ(functools.partial(_thresh_first, 0.2), functools.partial(_thresh_first, 0.8))
    assert cfg(functools.partial(_thresh_first, 0.2)) == cfg(functools.partial(_thresh_first, 0.2))


def test_a_partial_s_function_counts():
    """The same arguments bound to another function (both named by the partial's type: the qualified name in
    config() does not tell them apart)."""
    differ(functools.partial(_thresh_first, 0.5), functools.partial(_below_first, 0.5))


def _with_default(t):
    def quantize(x, level=t):  # the value lives in __defaults__, not in a closure
        return (x > level).float()

    return quantize


def test_default_argument_values_count():
    differ(_with_default(0.2), _with_default(0.8))
    assert cfg(_with_default(0.2)) == cfg(_with_default(0.2))


def by_nested_global(x):
    f = lambda v: (v > LEVEL).float()  # noqa: E731  (the global is read by the nested code only)
    return f(x)


def test_a_global_read_by_nested_code_counts(monkeypatch):
    import sys

    before, out = cfg(by_nested_global), by_nested_global(X)
    monkeypatch.setattr(sys.modules[__name__], "LEVEL", 0.2)
    assert not torch.equal(by_nested_global(X), out)
    assert cfg(by_nested_global) != before


def _band(x, opts):
    return ((x > opts["lo"]) & (x < opts["hi"])).float()


def test_dict_keys_count_not_only_values():
    """{lo: 0.2, hi: 0.8} and {hi: 0.2, lo: 0.8} hold the same values in the same order."""
    differ(functools.partial(_band, opts={"lo": 0.2, "hi": 0.8}), functools.partial(_band, opts={"hi": 0.2, "lo": 0.8}))


def _keep(classes):
    return lambda x: x if 3 in classes else x * 0


def test_set_members_count():
    differ(_keep({1, 3}), _keep({1, 2}))
    assert cfg(_keep({1, 3})) == cfg(_keep({3, 1}))


def _blur(kernel):
    return lambda x: nn.functional.conv2d(x, kernel, padding="same")


def test_a_captured_tensor_counts_by_its_shape_too():
    """A horizontal and a vertical box blur: the same bytes in another shape."""
    k = torch.tensor([[[[0.25, 0.5, 0.25]]]])
    differ(_blur(k), _blur(k.transpose(2, 3).contiguous()))


def test_a_captured_numpy_array_counts_by_its_dtype_too():
    """uint8 200 and int8 -56 have the same byte."""
    lut = np.array([200], dtype=np.uint8)

    def shift(table):
        return lambda x: x + float(table[0]) / 1000

    differ(shift(lut), shift(lut.view(np.int8)))


def _wrapped(t, times):
    f = lambda x: (x > t).float()  # noqa: E731
    for _ in range(times):  # a purifier behind a few layers of helpers (each a closure over the next)
        f = (lambda g: lambda x: g(x))(f)
    return f


def test_values_a_few_helpers_deep_count():
    differ(_wrapped(0.2, 4), _wrapped(0.8, 4))
    assert cfg(_wrapped(0.2, 4)) == cfg(_wrapped(0.2, 4))


class _Gain(nn.Module):
    def __init__(self, gain):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        return x * self.gain


class _Chain(nn.Module):
    def __init__(self, gain):
        super().__init__()
        self.inner = nn.Sequential(_Gain(gain))

    def forward(self, x):
        return self.inner(x)


def test_a_submodule_s_plain_attributes_count():
    differ(_Chain(0.5), _Chain(2.0))
    assert cfg(_Chain(0.5)) == cfg(_Chain(0.5))


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.Linear(4, 4))


def test_every_weight_counts_not_only_the_first():
    a, b = _net(), _net()
    with torch.no_grad():
        b[2].bias[-1] += 1.0  # the last number of the last tensor
    assert not torch.equal(a(X), b(X))
    assert weights_sha256(a) != weights_sha256(b)
    assert weights_sha256(a) == weights_sha256(_net())


def test_weights_count_by_name_and_shape():
    """Two same-shape layers' weights swapped, the same weights with a ReLU between (the same bytes in name order,
    other names), and a (1, 3) kernel turned (3, 1): other models."""
    a = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    torch.manual_seed(1)
    for p in a.parameters():
        nn.init.normal_(p)
    b = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    b[0].load_state_dict(a[1].state_dict())
    b[1].load_state_dict(a[0].state_dict())
    x = torch.ones(1, 4)
    assert not torch.equal(a(x), b(x))
    assert weights_sha256(a) != weights_sha256(b)

    c = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))  # a ReLU between: parameters 0.* and 2.*
    c[0].load_state_dict(a[0].state_dict())
    c[2].load_state_dict(a[1].state_dict())
    assert not torch.equal(a(x), c(x))
    assert weights_sha256(a) != weights_sha256(c)  # the same bytes in the same order, under other names

    h, v = nn.Conv2d(1, 1, (1, 3), bias=False), nn.Conv2d(1, 1, (3, 1), bias=False)
    v.weight.data = h.weight.data.reshape(1, 1, 3, 1).clone()
    assert weights_sha256(h) != weights_sha256(v)


def _classes(k: int, inner_body: str):
    """A user's Defense-like object with a class attribute k, and a module whose submodule's forward is
    ``inner_body``: as a notebook that redefines them."""
    src = (
        f"class Blur:\n    k = {k}\n    def __call__(self, x):\n        return x * self.k\n"
        "class Inner(torch.nn.Module):\n"
        f"    def forward(self, x):\n        {inner_body}\n"
        "class Outer(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.inner = Inner()\n"
        "    def forward(self, x):\n        return self.inner(x)\n"
    )
    scope = {"torch": torch, "__name__": "notebook"}
    exec(compile(src, "<notebook cell>", "exec"), scope)
    return scope["Blur"], scope["Outer"]


def test_class_attributes_count():
    (B1, _), (B3, _) = _classes(1, "return x"), _classes(3, "return x")
    differ(B1(), B3())
    assert methods_sha256(B1()) != methods_sha256(B3())
    assert code_sha256(B1()) == code_sha256(_classes(1, "return x")[0]())


def test_an_edited_submodule_forward_counts():
    """The outer module's code is the same; its submodule's forward was edited."""
    _, O1 = _classes(1, "return x")
    _, O2 = _classes(1, "return x.clamp(0.2, 0.8)")
    assert not torch.equal(O1()(X), O2()(X))
    assert methods_sha256(O1()) != methods_sha256(O2())
    assert methods_sha256(O1()) == methods_sha256(_classes(1, "return x")[1]())


def _window(x, region):
    out = torch.zeros_like(x)
    out[..., region, region] = x[..., region, region]
    return out


def _cast(x, dtype):
    return x.to(dtype).float()


def _stride(x, steps):
    return x[..., list(steps), :]


def test_captured_slices_ranges_dtypes_and_devices_count_by_their_value():
    """A slice, range, dtype or device a purifier captures counts by its value, not by its type's name (two windows
    slice(0, 4) and slice(1, 3) were one identity: the second evaluate() into a store reused the first's cells);
    the same value built twice is one identity."""
    differ(functools.partial(_window, region=slice(0, 4)), functools.partial(_window, region=slice(1, 3)))
    differ(functools.partial(_stride, steps=range(0, 4)), functools.partial(_stride, steps=range(0, 4, 2)))
    differ(functools.partial(_cast, dtype=torch.float16), functools.partial(_cast, dtype=torch.bfloat16))
    assert cfg(functools.partial(_window, region=slice(0, 4))) == cfg(functools.partial(_window, region=slice(0, 4)))
    assert code_sha256(torch.device("cpu")) != code_sha256(torch.device("meta"))
    assert code_sha256(torch.device("cpu")) == code_sha256(torch.device("cpu"))


class _ParamGain:
    """A user's purifier object whose gain is an ``nn.Parameter``: held by a plain object, in no state dict."""

    def __init__(self, v: float):
        self.w = nn.Parameter(torch.tensor(v))


class _ParamList(nn.Module):
    """Parameters in a plain list on a module: not registered, so in no state dict either."""

    def __init__(self, v: float):
        super().__init__()
        self.ws = [nn.Parameter(torch.tensor(v))]


def test_a_parameter_outside_any_state_dict_counts_by_value():
    """The key of a user's defense object reads attribute_values (its plain values) and attribute_models (its
    modules' weights): a Parameter held by a plain object or in a list is in neither module's weights, so it must
    count by value (it did not: attribute_values dropped every Parameter as "in the weights", and two gains 1.0 and
    2.0 had one key). A Parameter a module registers stays with its weights, not its attributes."""
    from defbench.harness.models import attribute_models, attribute_values

    assert attribute_values(_ParamGain(1.0)) != attribute_values(_ParamGain(2.0))
    assert attribute_values(_ParamGain(1.0)) == attribute_values(_ParamGain(1.0))
    assert attribute_models(_ParamGain(1.0)) == {}  # no module to hash: the value above is its only trace
    assert attribute_values(_ParamList(1.0)) != attribute_values(_ParamList(2.0))
    reg = nn.Linear(2, 2)
    assert "weight" not in attribute_values(reg) and "bias" not in attribute_values(reg)
