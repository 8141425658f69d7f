"""Read a sequential sparse PyTorch net as the exporter's blocks, or say why it cannot be.

The hardware runs a chain of *blocks*: a complementary-sparse Conv2d or
Linear, its batch norm (folded into it), a max-pool and an activation (k-WTA
or ReLU), in that order. This module takes an ``nn.Sequential`` (nested ones
are flattened) or any module whose ``forward`` torch.fx traces into a
straight chain, and groups its steps into those blocks. Every step it cannot
map onto the hardware is refused with the module's name and the reason, so
a user learns what to change in their model instead of getting a NetSpec
that computes something else.

Layer names come from the modules' own (qualified) names, made safe for the
NetSpec (an ASCII letter, then letters, digits or underscores; at most 64).
"""

from __future__ import annotations

import re

import torch
from torch import fx, nn

from ..model import CompSparseConv2d, CompSparseLinear, KWinners, KWinners2d

__all__ = ["ExportError", "FLATTEN", "chain_steps", "blocks_of", "safe_name"]

#: The step a flatten becomes (``nn.Flatten``, ``x.flatten(1)``, ``torch.flatten(x, 1)``).
FLATTEN = "flatten"

_WEIGHTED = (CompSparseConv2d, CompSparseLinear)
_ACTIVATIONS = (KWinners, KWinners2d, nn.ReLU)
_LEAVES = (*_WEIGHTED, KWinners, KWinners2d)
_SUPPORTED = ("CompSparseConv2d, CompSparseLinear, BatchNorm1d/2d (folded), MaxPool2d, "
              "KWinners, KWinners2d (local or global), ReLU, Flatten")


class ExportError(ValueError):
    """A model the exporter cannot turn into a NetSpec; the message names the module."""


def safe_name(name: str) -> str:
    """A module's qualified name as a NetSpec layer name (``features.0`` -> ``features_0``)."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not re.match(r"[A-Za-z]", safe):
        safe = "layer_" + safe
    return safe[:64]


class _Tracer(fx.Tracer):
    """Keeps the project's layers whole: their forward is data-dependent Python."""

    def is_leaf_module(self, m, qualname):
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)


def _flatten_call(node) -> bool:
    """Whether an fx node is ``x.flatten(1)`` / ``torch.flatten(x, 1)`` (keeping the batch)."""
    is_flatten = ((node.op == "call_method" and node.target == "flatten")
                  or (node.op == "call_function" and node.target is torch.flatten))
    if not is_flatten:
        return False
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
    return start == 1 and end == -1


def _sequential_steps(model, prefix=""):
    steps = []
    for name, child in model.named_children():
        qualified = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            steps += _sequential_steps(child, qualified + ".")
        else:
            steps.append((qualified, child))
    return steps


def _traced_steps(model):
    try:
        graph = _Tracer().trace(model)
    except Exception as error:  # torch.fx raises many kinds (TraceError, TypeError...)
        raise ExportError(f"{type(model).__name__}: torch.fx cannot trace its forward "
                          f"({type(error).__name__}: {error}); write the model as an "
                          f"nn.Sequential of {_SUPPORTED}") from None
    modules = dict(model.named_modules())
    steps, previous = [], None
    for node in graph.nodes:
        if node.op == "placeholder":
            if previous is not None:
                raise ExportError(f"{type(model).__name__}: forward takes more than one input "
                                  f"({node.target!r}); the accelerator has one input tensor")
            previous = node
            continue
        where = node.target if isinstance(node.target, str) else getattr(
            node.target, "__name__", str(node.target))
        inputs = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, fx.Node)]
        if inputs != [previous]:
            raise ExportError(f"{where!r}: not a straight chain (it takes "
                              f"{[str(a) for a in inputs]}, not just the previous step's output "
                              f"{str(previous)!r}); branches and skips cannot be exported")
        if node.op == "output":
            break
        if node.op == "get_attr":
            raise ExportError(f"{where!r}: forward uses a parameter or buffer directly; only "
                              f"modules and flatten(1) can be exported")
        if node.op == "call_module":
            steps.append((node.target, modules[node.target]))
        elif _flatten_call(node):
            steps.append((where, FLATTEN))
        else:
            raise ExportError(f"{where!r} ({node.op}): only modules and flatten(1) can be "
                              f"exported; use modules from: {_SUPPORTED}")
        previous = node
    return steps


def chain_steps(model) -> list:
    """``(qualified name, module or FLATTEN)`` per step of ``model``, in execution order."""
    if not isinstance(model, nn.Module):
        raise ExportError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(model, nn.Sequential) and not isinstance(model, _LEAVES) \
            and type(model).__module__.startswith("torch.nn"):
        raise ExportError(f"{type(model).__name__} is not supported; export an nn.Sequential "
                          f"(or a traceable module) of: {_SUPPORTED}")
    steps = (_sequential_steps(model) if isinstance(model, nn.Sequential)
             else _traced_steps(model))
    seen = {}
    for name, module in steps:
        if module is FLATTEN:
            continue
        if id(module) in seen:
            raise ExportError(f"{name!r}: the same module as {seen[id(module)]!r}, used twice; "
                              f"each step needs its own module")
        seen[id(module)] = name
        if isinstance(module, nn.Flatten):
            if (module.start_dim, module.end_dim) != (1, -1):
                raise ExportError(f"{name!r}: Flatten({module.start_dim}, {module.end_dim}) is "
                                  f"not supported; only Flatten(1, -1) keeps the batch")
    return [(name, FLATTEN if isinstance(module, nn.Flatten) else module)
            for name, module in steps]


def _check_pool(name, pool):
    size = pool.kernel_size
    if isinstance(size, tuple):
        if len(set(size)) != 1:
            raise ExportError(f"{name!r}: MaxPool2d kernel {size} is not square")
        size = size[0]
    stride = pool.stride[0] if isinstance(pool.stride, tuple) else pool.stride
    padding = pool.padding[0] if isinstance(pool.padding, tuple) else pool.padding
    dilation = pool.dilation[0] if isinstance(pool.dilation, tuple) else pool.dilation
    if stride not in (None, size) or padding != 0 or dilation != 1 or pool.ceil_mode \
            or pool.return_indices:
        raise ExportError(f"{name!r}: only MaxPool2d(k) with stride k, no padding, dilation "
                          f"1 and floor mode is supported (got {pool})")
    return size


def _check_bn(name, bn, layer_name, weighted):
    expected = nn.BatchNorm2d if isinstance(weighted, CompSparseConv2d) else nn.BatchNorm1d
    if type(bn) is not expected:
        raise ExportError(f"{name!r}: {type(bn).__name__} after {layer_name!r} "
                          f"({type(weighted).__name__}) cannot be folded; use {expected.__name__}")
    if bn.running_mean is None:
        raise ExportError(f"{name!r}: batch norm without running statistics "
                          f"(track_running_stats=False) cannot be folded")


def blocks_of(model, block_type):
    """The blocks of ``model`` as ``block_type`` (the exporter's :class:`Block`).

    Raises :class:`ExportError` naming the first module that does not fit.
    """
    steps = chain_steps(model)
    blocks, current, flattened, used = [], None, False, {}

    def layer_name(qualified):
        name = safe_name(qualified)
        if name in used:
            raise ExportError(f"{qualified!r} and {used[name]!r} both become layer name {name!r}; "
                              f"rename one of the modules")
        used[name] = qualified
        return name

    for qualified, module in steps:
        if module is FLATTEN:
            flattened = True
            current = None  # a flatten ends the block: nothing after it folds into the layer
            continue
        if isinstance(module, _WEIGHTED):
            if isinstance(module, CompSparseConv2d) and flattened:
                raise ExportError(f"{qualified!r}: a CompSparseConv2d after a flatten")
            current = block_type(name=layer_name(qualified), layer=module, bn=None, pool=None,
                                 activation=None, output_stage=qualified)
            blocks.append(current)
            continue
        if current is None:
            where = "at the start" if not blocks else "after a flatten"
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d, *_ACTIVATIONS)):
                raise ExportError(f"{qualified!r}: {type(module).__name__} {where}: the hardware "
                                  f"applies it only to a CompSparseConv2d/Linear's output")
            raise ExportError(f"{qualified!r}: {type(module).__name__} is not supported; "
                              f"supported: {_SUPPORTED}")
        owner = current.name
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if current.bn is not None or current.pool is not None or current.activation is not None:
                raise ExportError(f"{qualified!r}: batch norm must come right after "
                                  f"{owner!r} to be folded into it")
            _check_bn(qualified, module, owner, current.layer)
            current.bn = module
        elif isinstance(module, nn.MaxPool2d):
            if not isinstance(current.layer, CompSparseConv2d):
                raise ExportError(f"{qualified!r}: MaxPool2d after {owner!r}, which is not a "
                                  f"convolution")
            if current.pool is not None:
                raise ExportError(f"{qualified!r}: a second MaxPool2d after {owner!r}")
            if isinstance(current.activation, (KWinners, KWinners2d)):
                raise ExportError(f"{qualified!r}: MaxPool2d after the k-WTA of {owner!r}; the "
                                  f"hardware pools before the k-WTA (swap them)")
            _check_pool(qualified, module)
            current.pool = module
            current.pool_name = layer_name(qualified)
        elif isinstance(module, _ACTIVATIONS):
            if current.activation is not None:
                raise ExportError(f"{qualified!r}: a second activation after {owner!r}")
            if isinstance(module, nn.ReLU) and module.inplace:
                raise ExportError(f"{qualified!r}: ReLU(inplace=True) overwrites the output the "
                                  f"exporter calibrates on; use ReLU()")
            if isinstance(module, KWinners) and not isinstance(current.layer, CompSparseLinear):
                raise ExportError(f"{qualified!r}: KWinners (1-D) after {owner!r}, a "
                                  f"convolution; use KWinners2d")
            if isinstance(module, KWinners2d) and not isinstance(current.layer, CompSparseConv2d):
                raise ExportError(f"{qualified!r}: KWinners2d after {owner!r}, a linear layer; "
                                  f"use KWinners")
            current.activation = module
            if isinstance(module, (KWinners, KWinners2d)):
                current.activation_name = layer_name(qualified)
        else:
            raise ExportError(f"{qualified!r}: {type(module).__name__} is not supported; "
                              f"supported: {_SUPPORTED}")
        current.output_stage = qualified
    if not blocks:
        raise ExportError(f"{type(model).__name__} has no CompSparseConv2d or CompSparseLinear "
                          f"layer")
    last = blocks[-1]
    if last.pool is not None or last.activation is not None:
        extra = last.activation if last.activation is not None else last.pool
        raise ExportError(f"{last.name!r}: its {type(extra).__name__} follows the last layer, "
                          f"whose int32 outputs are the logits; end the model with the "
                          f"CompSparseConv2d/Linear (and its batch norm)")
    return blocks
