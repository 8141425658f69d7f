"""The NetSpec data model: layers, requantisation and the network.

The NetSpec is the one contract between the exporter, the golden model, the
hardware generator and the simulators (docs/netspec.md defines it). These
classes hold a NetSpec in memory; every constructor validates its own
invariants and raises :class:`NetSpecError` naming the layer, the field and
the rule broken, so a broken file is reported where it is read, not as a
wrong result three tools later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from math import prod

import numpy as np

from .pattern import Pattern, parse_pattern

__all__ = [
    "FORMAT", "VERSION", "VERSIONS", "EMPTY_SLOT", "INT8_MIN", "INT8_MAX", "MULTIPLIER_BITS",
    "MAX_SHIFT", "MAX_FRAC_BITS", "MIN_WEIGHT_BITS", "MAX_WEIGHT_BITS", "LAYER_NAME",
    "NetSpecError", "Requant", "Conv2d", "Linear", "MaxPool2d", "KWTA", "InputSpec", "NetSpec",
    "check_layer_name",
]

FORMAT = "cosparse-netspec"
VERSION = 3
#: Versions this reader understands: version 1 has int8 weights and no fraction bits,
#: version 2 no conv2d stride or padding.
VERSIONS = (1, 2, 3)
#: Kernel id of a packed slot that belongs to no kernel (its weight is 0).
EMPTY_SLOT = 255
INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
#: Requantisation multipliers are unsigned and fit this many bits.
MULTIPLIER_BITS = 16
MAX_SHIFT = 62
#: Extra fraction bits a requantised tensor may carry to its k-WTA (values up to 16 bits).
MAX_FRAC_BITS = 8
#: Packed weights are signed integers of this many bits (int8 storage up to 8, int16 above).
MIN_WEIGHT_BITS, MAX_WEIGHT_BITS = 2, 16


#: Layer names: an ASCII letter, then letters, digits or underscores, at most 64 in all. Every
#: tool downstream takes them as they are: npz keys ``<name>.<array>``, Python and Amaranth
#: names, Verilog module and signal names (Yosys, Verilator, Icarus, Vivado), file names.
LAYER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class NetSpecError(ValueError):
    """A NetSpec that breaks the format: the message names what and where."""


def _fail(where: str, message: str):
    raise NetSpecError(f"{where}: {message}")


def check_layer_name(name, where: str = "netspec"):
    """Raise NetSpecError unless ``name`` matches :data:`LAYER_NAME`."""
    if not isinstance(name, str) or not LAYER_NAME.fullmatch(name):
        _fail(where, f"layer name {name!r} is not allowed: use an ASCII letter followed by up "
                     f"to 63 letters, digits or underscores (the name ends up in array keys "
                     f"and Verilog identifiers)")


def _check_int(where, name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        _fail(where, f"{name} must be an integer, got {value!r}")


def _check_array(where, name, array, dtype, shape):
    if not isinstance(array, np.ndarray):
        _fail(where, f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != np.dtype(dtype):
        got = array.dtype.name
        if array.dtype.newbyteorder("=") == np.dtype(dtype) or got == np.dtype(dtype).name:
            got += (f" stored big-endian ({array.dtype.str}); save it little-endian, e.g. "
                    f"with array.astype('{np.dtype(dtype).str}')")
        _fail(where, f"{name} must have dtype {np.dtype(dtype).name}, got {got}")
    if array.shape != tuple(shape):
        _fail(where, f"{name} must have shape {tuple(shape)}, got {array.shape}")


def _check_positive_int(where, name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        _fail(where, f"{name} must be a positive integer, got {value!r}")


def _check_frac_bits(where, name, value):
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or not 0 <= value <= MAX_FRAC_BITS):
        _fail(where, f"{name} must be an integer in [0, {MAX_FRAC_BITS}], got {value!r}")


def weight_dtype(weight_bits: int) -> np.dtype:
    """Storage of packed weights of ``weight_bits`` bits: int8 up to 8, int16 above."""
    return np.dtype(np.int8 if weight_bits <= 8 else np.int16)


def _check_shape(where, name, shape, ndim):
    if (not isinstance(shape, tuple) or len(shape) != ndim
            or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in shape)):
        _fail(where, f"{name} must be a tuple of {ndim} positive integers, got {shape!r}")


@dataclass(frozen=True, eq=False)
class Requant:
    """Per-output-channel fixed-point requantisation to int8, or to int8 with fraction bits.

    ``y = clamp((a * multiplier + round_bias) >> shift, out_min * 2**f, out_max * 2**f)``
    with ``a = acc + bias``, ``round_bias = 2**(shift-1)`` (0 when shift is
    0) and ``f = frac_bits``: an exact integer form of round-half-up of
    ``a * multiplier / 2**shift``. With ``f > 0`` the output is an int8
    value with ``f`` extra fraction bits, finer than the int8 grid: a k-WTA
    ranks on it (ties and near-ties are decided as the float model decides
    them) and rounds its winners to int8 (:class:`KWTA`), so only a pool or
    a k-WTA may consume it.
    """

    multiplier: np.ndarray  # int32 [C_out], 0 <= m < 2**MULTIPLIER_BITS
    shift: np.ndarray  # int32 [C_out], 0 <= s <= MAX_SHIFT
    out_min: int = INT8_MIN
    out_max: int = INT8_MAX
    frac_bits: int = 0

    @property
    def low(self) -> int:
        """Smallest output value, ``out_min * 2**frac_bits``."""
        return self.out_min << self.frac_bits

    @property
    def high(self) -> int:
        """Largest output value, ``out_max * 2**frac_bits``."""
        return self.out_max << self.frac_bits

    def validate(self, where: str, channels: int):
        _check_array(where, "requant.multiplier", self.multiplier, np.int32, (channels,))
        _check_array(where, "requant.shift", self.shift, np.int32, (channels,))
        if self.multiplier.size and (self.multiplier.min() < 0
                                     or self.multiplier.max() >= 2 ** MULTIPLIER_BITS):
            bad = int(np.flatnonzero((self.multiplier < 0)
                                     | (self.multiplier >= 2 ** MULTIPLIER_BITS))[0])
            _fail(where, f"requant.multiplier[{bad}] = {int(self.multiplier[bad])} is outside "
                         f"[0, 2**{MULTIPLIER_BITS})")
        if self.shift.size and (self.shift.min() < 0 or self.shift.max() > MAX_SHIFT):
            bad = int(np.flatnonzero((self.shift < 0) | (self.shift > MAX_SHIFT))[0])
            _fail(where, f"requant.shift[{bad}] = {int(self.shift[bad])} is outside [0, {MAX_SHIFT}]")
        _check_int(where, "requant.out_min", self.out_min)
        _check_int(where, "requant.out_max", self.out_max)
        if not (INT8_MIN <= self.out_min <= self.out_max <= INT8_MAX):
            _fail(where, f"requant saturation bounds [{self.out_min}, {self.out_max}] must lie "
                         f"within int8 [{INT8_MIN}, {INT8_MAX}] with out_min <= out_max")
        _check_frac_bits(where, "requant.frac_bits", self.frac_bits)


@dataclass(frozen=True, eq=False)
class _PackedLayer:
    """Shared part of conv2d and linear: complementary-packed weights.

    Output channel ``g * n + kernel_ids[g, f]`` owns packed slot ``(g, f)``;
    ``kernel_ids == EMPTY_SLOT`` marks a slot of no kernel, whose weight is 0.
    Because each slot names exactly one kernel, two kernels of a group can
    never overlap in this form: overlap is caught by the packer instead.
    Weights are signed ``weight_bits``-bit integers (8 by default; a wider
    first layer follows the float model more closely for little hardware,
    since its fan-in is small), stored as int8 up to 8 bits, int16 above.
    ``pattern`` (:mod:`.pattern`: ``random``, ``nm:N:M`` or ``block:K``) is a
    structure the kernel ids follow, checked here; the hardware generator
    uses a block pattern to store one kernel id per block.
    """

    name: str
    n: int
    weights: np.ndarray  # int8 or int16 [groups, fan_in]
    kernel_ids: np.ndarray  # uint8 [groups, fan_in]
    bias: np.ndarray  # int32 [out_channels]
    requant: Requant | None
    weight_bits: int = 8
    pattern: str = "random"

    @property
    def groups(self) -> int:
        return -(-self.out_channels // self.n)

    def kernels_in_group(self, g: int) -> int:
        """Number of kernels in group ``g`` (the last group may be partial)."""
        return min(self.n, self.out_channels - g * self.n)

    def _validate_packing(self, where):
        _check_positive_int(where, "n", self.n)
        if self.n > 254:
            _fail(where, f"n = {self.n} exceeds 254 (kernel ids are uint8, 255 is the empty slot)")
        bits = self.weight_bits
        if (not isinstance(bits, (int, np.integer)) or isinstance(bits, bool)
                or not MIN_WEIGHT_BITS <= bits <= MAX_WEIGHT_BITS):
            _fail(where, f"weight_bits must be an integer in [{MIN_WEIGHT_BITS}, "
                         f"{MAX_WEIGHT_BITS}], got {bits!r}")
        _check_array(where, "weights", self.weights, weight_dtype(bits),
                     (self.groups, self.fan_in))
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        outside = (self.weights < low) | (self.weights > high)
        if outside.any():
            g, f = map(int, np.argwhere(outside)[0])
            _fail(where, f"weights[{g}, {f}] = {int(self.weights[g, f])} does not fit "
                         f"weight_bits = {bits} (range [{low}, {high}])")
        _check_array(where, "kernel_ids", self.kernel_ids, np.uint8, (self.groups, self.fan_in))
        _check_array(where, "bias", self.bias, np.int32, (self.out_channels,))
        limit = np.minimum(self.n, self.out_channels - np.arange(self.groups) * self.n)[:, None]
        ids = self.kernel_ids.astype(np.int64)
        bad = (ids != EMPTY_SLOT) & (ids >= limit)
        if bad.any():
            g, f = map(int, np.argwhere(bad)[0])
            _fail(where, f"kernel_ids[{g}, {f}] = {int(ids[g, f])} is out of range: group {g} has "
                         f"{int(limit[g, 0])} kernels (ids 0..{int(limit[g, 0]) - 1}, or "
                         f"{EMPTY_SLOT} for an empty slot)")
        loaded_empty = (ids == EMPTY_SLOT) & (self.weights != 0)
        if loaded_empty.any():
            g, f = map(int, np.argwhere(loaded_empty)[0])
            _fail(where, f"weights[{g}, {f}] = {int(self.weights[g, f])} sits in an empty slot "
                         f"(kernel id {EMPTY_SLOT}); empty slots must hold 0")
        self._validate_pattern(where)
        if self.requant is not None:
            self.requant.validate(where, self.out_channels)
        bound = self.accumulator_bound()
        if bound > INT32_MAX:
            _fail(where, f"worst-case |accumulator + bias| = {bound} overflows int32")

    @property
    def pattern_kernel(self) -> int:
        """Kernel size the pattern's blocks are laid out over (1 for a linear layer)."""
        return getattr(self, "kernel", 1)

    @property
    def structure(self) -> Pattern:
        """The parsed :attr:`pattern`."""
        return parse_pattern(self.pattern)

    def _validate_pattern(self, where):
        try:
            pattern = parse_pattern(self.pattern)
            pattern.check_group(self.n, "n")
        except (TypeError, ValueError) as error:
            _fail(where, str(error))
        if str(pattern) != self.pattern:
            _fail(where, f"pattern {self.pattern!r} must be written {str(pattern)!r}")
        broken = pattern.violation(self.kernel_ids, self.pattern_kernel)
        if broken is not None:
            _fail(where, f"kernel_ids break pattern {pattern}: {broken}")

    def dense_weight(self) -> np.ndarray:
        """Unpacked weights ``[out_channels, fan_in]`` in the weights' dtype (zeros off-support)."""
        dense = np.zeros((self.out_channels, self.fan_in), self.weights.dtype)
        g, f = np.nonzero(self.kernel_ids != EMPTY_SLOT)
        dense[g * self.n + self.kernel_ids[g, f].astype(np.int64), f] = self.weights[g, f]
        return dense

    def accumulator_bound(self) -> int:
        """Largest |acc + bias| any int8 input can produce, over all kernels."""
        per_kernel = np.abs(self.dense_weight().astype(np.int64)).sum(axis=1) * 128
        return int((per_kernel + np.abs(self.bias.astype(np.int64))).max(initial=0))


@dataclass(frozen=True, eq=False)
class Conv2d(_PackedLayer):
    """2-D convolution with ``stride`` and zero ``padding`` (both sides, both axes); fan-in
    order (c, ky, kx). Stride 1 and padding 0 is a "valid" convolution."""

    in_shape: tuple[int, int, int] = (1, 1, 1)
    out_channels: int = 1
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    kind = "conv2d"

    @property
    def fan_in(self) -> int:
        return self.in_shape[0] * self.kernel * self.kernel

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return (self.out_channels, (h + 2 * self.padding - self.kernel) // self.stride + 1,
                (w + 2 * self.padding - self.kernel) // self.stride + 1)

    def validate(self):
        where = f"layer {self.name!r} (conv2d)"
        _check_shape(where, "in_shape", self.in_shape, 3)
        _check_positive_int(where, "out_channels", self.out_channels)
        _check_positive_int(where, "kernel", self.kernel)
        _check_positive_int(where, "stride", self.stride)
        _check_int(where, "padding", self.padding)
        if not 0 <= self.padding < self.kernel:
            _fail(where, f"padding = {self.padding} must be from 0 to kernel - 1 = "
                         f"{self.kernel - 1} (more pads only zeros: outputs of bias alone)")
        if self.kernel > min(self.in_shape[1:]) + 2 * self.padding:
            _fail(where, f"kernel {self.kernel} is larger than the input {self.in_shape[1:]}"
                         + (f" padded by {self.padding}" if self.padding else ""))
        self._validate_packing(where)


@dataclass(frozen=True, eq=False)
class Linear(_PackedLayer):
    """Fully connected layer; its input is the previous output flattened in (C, H, W) order."""

    in_features: int = 1
    out_features: int = 1
    kind = "linear"

    @property
    def in_shape(self) -> tuple[int]:
        return (self.in_features,)

    @property
    def out_channels(self) -> int:
        return self.out_features

    @property
    def fan_in(self) -> int:
        return self.in_features

    @property
    def out_shape(self) -> tuple[int]:
        return (self.out_features,)

    def validate(self):
        where = f"layer {self.name!r} (linear)"
        _check_positive_int(where, "in_features", self.in_features)
        _check_positive_int(where, "out_features", self.out_features)
        self._validate_packing(where)


@dataclass(frozen=True, eq=False)
class MaxPool2d:
    """Non-overlapping max-pool: window = stride = ``size``; H and W divisible by it."""

    name: str
    in_shape: tuple[int, int, int]
    size: int
    kind = "maxpool2d"

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return (c, h // self.size, w // self.size)

    def validate(self):
        where = f"layer {self.name!r} (maxpool2d)"
        _check_shape(where, "in_shape", self.in_shape, 3)
        _check_positive_int(where, "size", self.size)
        if self.in_shape[1] % self.size or self.in_shape[2] % self.size:
            _fail(where, f"input {self.in_shape[1:]} is not divisible by pool size {self.size}")


@dataclass(frozen=True, eq=False)
class KWTA:
    """k-winners-take-all: keep the k largest values, zero the rest.

    ``mode="local"``: top-k across channels at each (y, x) of a (C, H, W)
    input. ``mode="global"``: top-k over the whole input in flat (C, H, W)
    order. Ties: the lower index (channel, or flat index) wins.
    ``frac_bits`` is the number of fraction bits of its input (the
    requantisation's ``frac_bits`` before it): winners are chosen on the
    fine values and passed on rounded half up to int8,
    ``(v + 2**(f-1)) >> f``.
    """

    name: str
    in_shape: tuple[int, ...]
    mode: str
    k: int
    frac_bits: int = 0
    kind = "kwta"

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.in_shape

    @property
    def candidates(self) -> int:
        """How many values compete for the k places."""
        return self.in_shape[0] if self.mode == "local" else prod(self.in_shape)

    def validate(self):
        where = f"layer {self.name!r} (kwta)"
        if self.mode not in ("local", "global"):
            _fail(where, f"mode must be 'local' or 'global', got {self.mode!r}")
        if self.mode == "local":
            _check_shape(where, "in_shape", self.in_shape, 3)
        elif not (isinstance(self.in_shape, tuple) and len(self.in_shape) in (1, 3)):
            _fail(where, f"in_shape must be (C, H, W) or (features,), got {self.in_shape!r}")
        _check_positive_int(where, "k", self.k)
        if self.k > self.candidates:
            _fail(where, f"k = {self.k} is larger than the {self.candidates} values it selects from")
        _check_frac_bits(where, "frac_bits", self.frac_bits)


@dataclass(frozen=True, eq=False)
class InputSpec:
    """The int8 input tensor and how features were quantised into it."""

    shape: tuple[int, int, int]
    qmin: int = 0
    qmax: int = 127
    quant: dict = field(default_factory=dict)

    def validate(self):
        _check_shape("input", "shape", self.shape, 3)
        _check_int("input", "qmin", self.qmin)
        _check_int("input", "qmax", self.qmax)
        if not isinstance(self.quant, dict):
            _fail("input", f"quant must be a dict, got {type(self.quant).__name__}")
        if not (INT8_MIN <= self.qmin <= self.qmax <= INT8_MAX):
            _fail("input", f"[qmin, qmax] = [{self.qmin}, {self.qmax}] must lie within int8")


Layer = Conv2d | Linear | MaxPool2d | KWTA


@dataclass(frozen=True, eq=False)
class NetSpec:
    """A whole network: input, layers in execution order, class names.

    The last layer is a conv2d or linear without requantisation: its int32
    ``acc + bias`` are the logits, and the class is their argmax (lowest
    index wins a tie). Every other packed layer requantises to int8.
    """

    name: str
    input: InputSpec
    layers: tuple
    classes: tuple[str, ...]
    version: int = VERSION

    def __post_init__(self):
        self.validate()

    @property
    def packed_layers(self) -> list:
        return [layer for layer in self.layers if isinstance(layer, _PackedLayer)]

    def layer(self, name: str):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}; layers are {[l.name for l in self.layers]}")

    def validate(self):
        if (not isinstance(self.version, (int, np.integer)) or isinstance(self.version, bool)
                or self.version not in VERSIONS):
            _fail("netspec", f"version {self.version} is not supported (this cosparse reads "
                             f"versions {', '.join(map(str, VERSIONS))}); re-export the model "
                             f"with `cosparse export`")
        self.input.validate()
        if not self.layers:
            _fail("netspec", "has no layers")
        if not isinstance(self.name, str) or not self.name:
            _fail("netspec", f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.classes, tuple) or not all(
                isinstance(c, str) and c for c in self.classes):
            _fail("netspec", f"classes must be a tuple of non-empty strings, got "
                             f"{self.classes!r}")
        repeated = next((c for c in self.classes if self.classes.count(c) > 1), None)
        if repeated is not None:
            _fail("netspec", f"class name {repeated!r} is used twice; every output needs its "
                             f"own name")
        names = [layer.name for layer in self.layers]
        for name in names:
            check_layer_name(name)
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            _fail("netspec", f"layer name {duplicate!r} is used twice")
        shape, int8, frac = self.input.shape, True, 0
        for index, layer in enumerate(self.layers):
            where = f"layer {layer.name!r} ({layer.kind})"
            expected = (prod(shape),) if isinstance(layer, Linear) else shape
            if tuple(layer.in_shape) != tuple(expected):
                _fail(where, f"in_shape {tuple(layer.in_shape)} does not match the previous "
                             f"output {tuple(shape)}")
            if isinstance(layer, (KWTA, Conv2d, Linear)) and not int8:
                _fail(where, "its input is the int32 output of an unrequantised layer; only the "
                             "last layer may omit requant")
            layer.validate()
            self._validate_fraction_bits(where, layer, frac)
            if isinstance(layer, _PackedLayer):
                frac = layer.requant.frac_bits if layer.requant is not None else 0
            elif isinstance(layer, KWTA):
                frac = 0
            last = index == len(self.layers) - 1
            if isinstance(layer, _PackedLayer):
                if layer.requant is None and not last:
                    _fail(where, "has no requant but is not the last layer")
                if layer.requant is not None and last:
                    _fail(where, "the last layer must output int32 logits (requant: null)")
                int8 = layer.requant is not None
            elif last:
                _fail(where, "the last layer must be conv2d or linear (its outputs are the logits)")
            shape = layer.out_shape
        if len(self.classes) != prod(shape):
            _fail("netspec", f"{len(self.classes)} class names for {prod(shape)} outputs")

    def _validate_fraction_bits(self, where, layer, frac):
        """Fine values (fraction bits) flow only through pools into the k-WTA that rounds them."""
        widened = (isinstance(layer, _PackedLayer)
                   and (layer.weight_bits != 8
                        or (layer.requant is not None and layer.requant.frac_bits)))
        if self.version == 1 and (widened or (isinstance(layer, KWTA) and layer.frac_bits)):
            _fail(where, "weight_bits other than 8 and frac_bits need NetSpec version 2; "
                         "this file says version 1")
        if self.version < 3 and isinstance(layer, Conv2d) and (layer.stride, layer.padding) \
                != (1, 0):
            _fail(where, f"stride and padding need NetSpec version 3; this file says version "
                         f"{self.version}")
        if isinstance(layer, _PackedLayer) and frac:
            _fail(where, f"its input has {frac} fraction bits; a kwta with frac_bits = {frac} "
                         f"must round it to int8 first")
        if isinstance(layer, KWTA) and layer.frac_bits != frac:
            _fail(where, f"frac_bits = {layer.frac_bits} but its input has {frac} fraction bits "
                         f"(the requant.frac_bits of the layer before it)")

    @property
    def output_size(self) -> int:
        return prod(self.layers[-1].out_shape)
