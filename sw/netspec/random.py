"""Random valid NetSpecs and inputs, for testing every part on more than one network.

Bit-exactness on the one shipped model proves little; these generators make
networks of random shapes, packing factors, k, empty slots and
requantisation parameters, so that the golden model, the hardware generator
and the simulators are checked against each other on cases nobody tuned for.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .layers import (EMPTY_SLOT, KWTA, MAX_SHIFT, MULTIPLIER_BITS, Conv2d, InputSpec, Linear,
                     MaxPool2d, NetSpec, Requant, weight_dtype)
from .pattern import parse_pattern

__all__ = ["random_packing", "random_requant", "random_netspec", "random_inputs",
           "pattern_ids"]


def random_packing(rng: np.random.Generator, out_channels: int, fan_in: int, n: int,
                   empty_fraction: float = 0.0):
    """Random complementary packing: int8 weights and kernel ids ``[groups, fan_in]``.

    Each group's slots are dealt to its kernels in a random order; a random
    ``empty_fraction`` of slots is left empty (kernel id EMPTY_SLOT, weight 0).
    """
    groups = -(-out_channels // n)
    ids = np.empty((groups, fan_in), np.uint8)
    for g in range(groups):
        kernels = min(n, out_channels - g * n)
        ids[g] = rng.permutation(np.arange(fan_in) % kernels)
    ids[rng.random(ids.shape) < empty_fraction] = EMPTY_SLOT
    weights = rng.integers(-128, 128, ids.shape, dtype=np.int16)
    weights[ids == EMPTY_SLOT] = 0
    return weights.astype(np.int8), ids


def random_requant(rng: np.random.Generator, channels: int, fan_in_per_kernel: float,
                   input_scale: float = 64.0) -> Requant:
    """Multipliers and shifts that map a typical accumulator onto int8, with some saturation."""
    typical = max(1.0, np.sqrt(fan_in_per_kernel) * 74.0 * input_scale)
    scale = 100.0 / typical * rng.uniform(0.5, 2.0, channels)
    shift = np.clip(np.floor(np.log2((2 ** MULTIPLIER_BITS - 1) / scale)), 0, 40).astype(np.int32)
    multiplier = np.clip(np.round(scale * 2.0 ** shift), 0, 2 ** MULTIPLIER_BITS - 1)
    return Requant(multiplier=multiplier.astype(np.int32), shift=shift)


def _packed(rng, kind, name, shape_args, out_channels, fan_in, n, requant, empty_fraction):
    weights, ids = random_packing(rng, out_channels, fan_in, n, empty_fraction)
    bias = rng.integers(-2000, 2000, out_channels).astype(np.int32)
    rq = random_requant(rng, out_channels, fan_in / n) if requant else None
    return kind(name=name, n=n, weights=weights, kernel_ids=ids, bias=bias, requant=rq,
                **shape_args)


def _widened(layer, bits: int, frac: int, rng):
    """``layer`` with ``bits``-bit weights and ``frac`` fraction bits on its requantisation.

    The weights are redrawn over the wider range (same slots) and the shift
    moved by the change of scale, so outputs stay as spread as before.
    """
    weights = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), layer.weights.shape)
    weights[layer.kernel_ids == EMPTY_SLOT] = 0
    requant = layer.requant
    if requant is not None:
        shift = np.clip(requant.shift.astype(np.int64) + (bits - 8) - frac, 0, MAX_SHIFT)
        requant = replace(requant, shift=shift.astype(np.int32), frac_bits=frac)
    return replace(layer, weights=weights.astype(weight_dtype(bits)), weight_bits=bits,
                   requant=requant)


def _random_widths(layers, rng):
    """Random weight widths for every packed layer and fraction bits before every k-WTA."""
    layers = list(layers)
    for index, layer in enumerate(layers):
        if not isinstance(layer, (Conv2d, Linear)):
            continue
        after = index + 1
        while after < len(layers) and isinstance(layers[after], MaxPool2d):
            after += 1
        selects = after < len(layers) and isinstance(layers[after], KWTA)
        frac = int(rng.choice([0, 2, 4, 8])) if selects else 0
        layers[index] = _widened(layer, int(rng.choice([4, 8, 12, 16])), frac, rng)
        if selects:
            layers[after] = replace(layers[after], frac_bits=frac)
    return tuple(layers)


def pattern_ids(rng: np.random.Generator, pattern, out_channels: int, fan_in: int, n: int,
                kernel: int = 1, empty_fraction: float = 0.0) -> np.ndarray:
    """Random kernel ids ``[groups, fan_in]`` (uint8) that follow ``pattern``.

    ``block``: each group's blocks dealt to its kernels in a random order;
    ``nm``: in every run a random permutation dealt ``N`` slots per kernel;
    ``random``: slots dealt as :func:`random_packing`. Then a random
    ``empty_fraction`` of slots is emptied (an empty slot breaks no pattern).
    """
    pattern = parse_pattern(pattern)
    groups = -(-out_channels // n)
    ids = np.empty((groups, fan_in), np.int64)
    units = pattern.units(fan_in, kernel)
    count = int(units.max()) + 1
    for g in range(groups):
        kernels = min(n, out_channels - g * n)
        if pattern.kind == "nm":
            rank = rng.random((count, pattern.m)).argsort(1).argsort(1).reshape(-1)[:fan_in]
            ids[g] = np.where(rank // pattern.n < kernels, rank // pattern.n, EMPTY_SLOT)
        else:
            ids[g] = rng.permutation(np.arange(count) % kernels)[units]
    ids[rng.random(ids.shape) < empty_fraction] = EMPTY_SLOT
    return ids.astype(np.uint8)


def _patterned(layers, pattern: str, rng):
    """``layers`` with every packed layer of ``n > 1`` redrawn to follow ``pattern``
    (``block:K``, or ``nm:N``: N:M with ``M = n * N`` for each layer's ``n``)."""
    result = []
    for layer in layers:
        if not isinstance(layer, (Conv2d, Linear)) or layer.n == 1:
            result.append(layer)
            continue
        text = pattern
        if pattern.startswith("nm:") and pattern.count(":") == 1:
            per_kernel = int(pattern[3:])
            text = f"nm:{per_kernel}:{per_kernel * layer.n}"
        ids = pattern_ids(rng, text, layer.out_channels, layer.fan_in, layer.n,
                          layer.pattern_kernel, float(np.mean(layer.kernel_ids == EMPTY_SLOT)))
        weights = np.where(ids == EMPTY_SLOT, 0, layer.weights).astype(layer.weights.dtype)
        result.append(replace(layer, kernel_ids=ids, weights=weights, pattern=text))
    return tuple(result)


def random_netspec(seed: int, *, max_channels: int = 8, max_size: int = 12,
                   empty_fraction: float = 0.05, widths: bool = False,
                   strided: bool = False, pattern: str | None = None) -> NetSpec:
    """A small random conv -> [pool] -> [kwta] -> ... -> linear network.

    Shapes, packing factors n, pool and k-WTA presence, k and mode are all
    drawn from ``seed``; the result always validates. ``widths`` also draws
    each packed layer's ``weight_bits`` (4, 8, 12 or 16) and the
    ``frac_bits`` a layer hands its k-WTA (0, 2, 4 or 8), from a second
    stream of the same seed, so the shapes are those without ``widths``.
    ``strided`` draws each convolution's stride (1 to 2) and zero padding
    (0 to K - 1) from a third stream, the first convolution never stride 1
    without padding (kernel sizes and channels stay those without it).
    ``pattern`` (``block:K``, or ``nm:N`` for N:M with ``M = n * N`` per
    layer) redraws the kernel ids of every packed layer with ``n > 1`` to
    follow it, from a fourth stream (weights kept, emptied slots zeroed).
    """
    rng = np.random.default_rng(seed)
    strides = np.random.default_rng([seed, 2])
    in_c = int(rng.integers(1, 3))
    size = int(rng.integers(6, max_size + 1))
    shape = (in_c, size, size)
    layers = []
    for index in range(int(rng.integers(1, 3))):
        kernel = int(rng.integers(1, min(4, shape[1]) + 1))
        out_c = int(rng.integers(2, max_channels + 1))
        n = int(rng.integers(1, out_c + 1))
        geometry = dict(in_shape=shape, out_channels=out_c, kernel=kernel)
        if strided:
            stride, padding = int(strides.integers(1, 3)), int(strides.integers(0, kernel))
            if index == 0 and (stride, padding) == (1, 0):
                stride, padding = (2, 0) if kernel == 1 else (1, 1)
            geometry.update(stride=stride, padding=padding)
        conv = _packed(rng, Conv2d, f"conv{index + 1}", geometry, out_c,
                       shape[0] * kernel * kernel, n, True, empty_fraction)
        layers.append(conv)
        shape = conv.out_shape
        if shape[1] % 2 == 0 and shape[2] % 2 == 0 and shape[1] >= 4 and rng.random() < 0.6:
            layers.append(MaxPool2d(name=f"pool{index + 1}", in_shape=shape, size=2))
            shape = layers[-1].out_shape
        if rng.random() < 0.8:
            layers.append(KWTA(name=f"kwta{index + 1}", in_shape=shape, mode="local",
                               k=int(rng.integers(1, shape[0] + 1))))
    features = int(np.prod(shape))
    if rng.random() < 0.7:
        hidden = int(rng.integers(4, 33))
        n = int(rng.integers(1, 9))
        layers.append(_packed(rng, Linear, "fc1", dict(in_features=features, out_features=hidden),
                              hidden, features, n, True, empty_fraction))
        layers.append(KWTA(name="kwta_fc1", in_shape=(hidden,), mode="global",
                           k=int(rng.integers(1, hidden + 1))))
        features = hidden
    classes = int(rng.integers(2, 7))
    n = int(rng.integers(1, classes + 1))
    layers.append(_packed(rng, Linear, "out", dict(in_features=features, out_features=classes),
                          classes, features, n, False, empty_fraction))
    layers = tuple(layers)
    if widths:
        layers = _random_widths(layers, np.random.default_rng([seed, 1]))
    if pattern is not None:
        layers = _patterned(layers, pattern, np.random.default_rng([seed, 3]))
    return NetSpec(name=f"random-{seed}", input=InputSpec(shape=(in_c, size, size), qmin=0,
                                                          qmax=127),
                   layers=layers, classes=tuple(f"class{i}" for i in range(classes)))


def random_inputs(spec: NetSpec, batch: int, seed: int = 0, density: float = 0.6) -> np.ndarray:
    """int8 inputs ``[batch, *input.shape]`` in the input range, about ``density`` non-zero."""
    rng = np.random.default_rng(seed)
    shape = (batch, *spec.input.shape)
    x = rng.integers(spec.input.qmin, spec.input.qmax + 1, shape)
    x[rng.random(shape) >= density] = 0
    return np.clip(x, spec.input.qmin, spec.input.qmax).astype(np.int8)
