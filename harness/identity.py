"""What identifies a model, an array or a piece of user code in a cell's key: sha256 digests that are the same in
every process (no memory addresses, no str-hash orders).

:func:`weights_sha256` (a module's state dict), :func:`array_digest` (a tensor's or numpy array's bytes),
:func:`code_sha256` (what a callable computes with: code, closures, globals, partial arguments, objects' attributes
and methods) and :func:`methods_sha256` (the code of the methods of an object's own classes: a user's classifier
whose ``forward`` was edited, or a user's ``Defense`` whose ``_purify`` was). Here rather than in
:mod:`defbench.api` so that the runner (:mod:`defbench.harness.models`) keys a user's objects by them too.
"""

from __future__ import annotations

import hashlib
import inspect
import functools
import site
import sys
import sysconfig
import types
from typing import Any

import numpy as np
import torch
from torch import nn


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def array_digest(v: Any) -> str | None:
    """'tensor|ndarray <dtype> <shape> <sha256 of the bytes>' of a torch tensor or a numpy array of numbers; None
    for anything else."""
    if isinstance(v, torch.Tensor):
        t = v.detach().cpu().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        kind, dtype, shape = "tensor", t.dtype, tuple(t.shape)
    elif isinstance(v, np.ndarray) and v.dtype != object:
        a = np.ascontiguousarray(v)
        kind, dtype, shape, data = "ndarray", a.dtype, a.shape, a.tobytes()
    else:
        return None
    return f"{kind} {dtype} {shape} {hashlib.sha256(data).hexdigest()}"


#: where installed libraries and the standard library live: their functions and classes count by name only
_LIBRARY_DIRS = tuple(
    {sysconfig.get_path(p) for p in ("stdlib", "platstdlib", "purelib", "platlib")}
    | set(site.getsitepackages())
    | {site.getusersitepackages()}
)
#: values counted by their type and repr, which states the value (a slice, range, dtype or device of the builtins'
#: or torch's types was counted by its type's name alone: slice(0, 28) and slice(12, 16) were one identity)
_SIMPLE = (
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    type(None),
    slice,
    range,
    torch.dtype,
    torch.device,
    torch.layout,
    torch.memory_format,
)
_MODULE_INTERNALS = set(vars(nn.Module())) - {"training"}  # hooks, and the weights (hashed as a whole)
_MAX_DEPTH = 20


def code_sha256(obj) -> str:
    """sha256 of what a callable computes with, the same in every process (no memory addresses, sets sorted).

    Covered: a function's bytecode, constants, names and parameter names, the code nested in it (comprehensions,
    lambdas, inner functions), its defaults, the values its closure captured and the module globals its code
    names (each value as below, a function recursively); a ``functools.partial``'s function, arguments and
    keywords; a bound method's function and instance; an object's attributes and the methods and plain class
    attributes of its classes; an ``nn.Module``'s weights and each submodule's attributes (not its hooks).
    Values: numbers (numpy scalars too), strings, bytes, None, slices, ranges, torch dtypes and devices, tensors
    and numpy arrays (by bytes), tuples, lists, dicts and sets of them, and the above. Counted by qualified name
    only: modules, classes, builtins, the functions and objects of installed libraries and of the standard
    library, and anything nested deeper than ``_MAX_DEPTH``. Not covered: what a call reads otherwise (files, the
    environment, random state)."""
    h = hashlib.sha256()
    _feed(obj, h, {}, 0)
    return h.hexdigest()


def _feed(v, h, seen: dict[int, Any], depth: int) -> None:
    """Add ``v``'s identity to the hash ``h`` (see :func:`code_sha256`); ``seen`` breaks cycles."""

    def put(*parts):
        h.update("|".join(map(str, parts)).encode() + b";")

    def feed(*values):
        for x in values:
            _feed(x, h, seen, depth + 1)

    if isinstance(v, np.generic):  # a numpy scalar: its value
        v = v.item()
    if isinstance(v, _SIMPLE):
        return put(type(v).__name__, repr(v))
    digest = array_digest(v)  # a tensor or a numpy array: by its bytes (hashed once)
    if digest is not None:
        return put(digest)
    if depth > _MAX_DEPTH or isinstance(v, (types.ModuleType, type)) or id(v) in seen:
        return put("name", _name(v))
    seen[id(v)] = v  # kept alive, so that its id is not reused
    if isinstance(v, (tuple, list)):
        put(type(v).__name__, len(v))
        feed(*v)
    elif isinstance(v, dict):
        put("dict", len(v))
        feed(*(x for item in v.items() for x in item))
    elif isinstance(v, (set, frozenset)):  # str hashes, hence set orders, differ between processes
        put("set", *sorted(code_sha256(x) for x in v))
    elif isinstance(v, types.CodeType):
        put("code", v.co_code.hex(), v.co_names, v.co_varnames)
        feed(*v.co_consts)
    elif isinstance(v, functools.partial):
        put("partial")
        feed(v.func, v.args, v.keywords)
    elif inspect.ismethod(v):
        put("method")
        feed(v.__func__, v.__self__)
    elif isinstance(v, types.FunctionType) and not _library(v):
        names = sorted(_code_names(v.__code__) & v.__globals__.keys())
        put("function", *names)
        feed(v.__code__, v.__defaults__, v.__kwdefaults__, [_cell(c) for c in v.__closure__ or ()])
        feed(*(v.__globals__[n] for n in names))
    elif isinstance(v, nn.Module) or not (type(v).__module__ == "builtins" or _library(type(v))):
        for path, m in v.named_modules() if isinstance(v, nn.Module) else [("", v)]:
            own = _members(m)
            put("object", path, _name(type(m)), *(k for k, _ in own))
            feed(*(a for _, a in own))
        if isinstance(v, nn.Module):
            put("weights", weights_sha256(v))
    else:  # builtins, and the functions and objects of libraries
        put("name", _name(v))


def _name(v) -> str:
    """``module.qualname`` of a function or class (of a module: its name; of anything else: its type's)."""
    if isinstance(v, types.ModuleType):
        return v.__name__
    t = v if hasattr(v, "__qualname__") else type(v)
    return f"{getattr(t, '__module__', '?')}.{t.__qualname__}"


def _library(v) -> bool:
    """Whether a function or class comes from an installed library or the standard library."""
    path = getattr(sys.modules.get(getattr(v, "__module__", None) or ""), "__file__", None) or ""
    return path.startswith(_LIBRARY_DIRS)


def _code_names(code: types.CodeType) -> set[str]:
    """The global and attribute names a code object and the code nested in it use."""
    return set(code.co_names).union(*(_code_names(c) for c in code.co_consts if isinstance(c, types.CodeType)))


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet filled
        return "<empty cell>"


def _members(obj) -> list[tuple[str, Any]]:
    """An object's attributes (an ``nn.Module``'s without its internals) and the methods and plain class
    attributes of the classes in its MRO that no library defines."""
    skip = _MODULE_INTERNALS if isinstance(obj, nn.Module) else ()
    out = [(k, a) for k, a in getattr(obj, "__dict__", {}).items() if k not in skip]
    for c in type(obj).__mro__:
        if not _library(c):
            unwrap = [(k, getattr(a, "__func__", a)) for k, a in vars(c).items()]  # static/class methods
            out += [(f"{c.__qualname__}.{k}", a) for k, a in unwrap if inspect.isfunction(a) or isinstance(a, _SIMPLE)]
    return out


def methods_sha256(obj: Any) -> str:
    """sha256 of the code of the methods (and plain class attributes) of the classes of ``obj`` and, for a module,
    of each of its submodules, leaving out classes of installed libraries and of defbench itself (its code is
    versioned by RESULTS_VERSION): the same weights under an edited ``forward``, or a ``Defense`` whose
    ``_purify`` changed, is another model. Each method counts as :func:`code_sha256` counts a function."""
    h = hashlib.sha256()
    seen: dict[int, Any] = {}
    owners = [m for _, m in obj.named_modules()] if isinstance(obj, nn.Module) else [obj]
    done: set[type] = set()
    for owner in owners:
        for c in type(owner).__mro__:
            if c in done or _library(c) or (c.__module__ or "").split(".")[0] == "defbench":
                continue
            done.add(c)
            for k, a in sorted(vars(c).items()):
                a = getattr(a, "__func__", a)  # static and class methods
                if inspect.isfunction(a) or isinstance(a, _SIMPLE):
                    h.update(f"{c.__module__}.{c.__qualname__}.{k};".encode())
                    _feed(a, h, seen, 1)
    return h.hexdigest()
