"""The GSC keyword-spotting CNN, sparse-sparse or dense, in float PyTorch.

Layer order follows nupic.torch and the complementary-sparsity paper::

    conv1 5x5 1->64 -> bn1 -> pool1 (2) -> kwta1 (local)
    conv2 5x5 64->64 -> bn2 -> pool2 (2) -> kwta2 (local)
    flatten (C, H, W) -> fc1 1600->1500 -> bn3 -> kwta3 (global) -> fc2 1500->12

Batch norms have ``affine=False`` so the exporter can fold them into the
preceding layer's weights and bias. In the dense baseline every ``kwta*``
attribute is an ``nn.ReLU`` instead of a k-WTA.
"""
import math
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from ..features import check_normalisation
from .complementary import CompSparseConv2d, CompSparseLinear
from .kwta import KWinners, KWinners2d
from .patterns import layer_patterns

LAYERS = ("conv1", "conv2", "fc1", "fc2")
"""Names of the complementary-sparse (weighted) layers, in execution order."""

IFT_VARIANTS = ("none", "wide", "parallel")
"""``--ift`` choices: Sparse Iso-FLOP Transformations (:mod:`.ift`)."""

BRANCHED = ("conv1", "conv2", "fc1")
"""Layers Sparse Parallel splits into branches (each is followed by a batch norm; fc2 is not)."""

STAGES = ("conv1", "bn1", "pool1", "kwta1", "conv2", "bn2", "pool2", "kwta2",
          "flatten", "fc1", "bn3", "kwta3", "fc2")
"""Stage names, in execution order, of :meth:`GSCNet.forward_with_activations`."""


@dataclass(frozen=True)
class NetConfig:
    """Hyper-parameters of :class:`GSCNet`; the default is the sparse-sparse model.

    Attributes
    ----------
    in_shape : tuple of int
        ``(C, H, W)`` of the input features.
    conv1_channels, conv1_kernel, n1 : int
        First conv: output channels, square kernel size, packing factor.
    conv2_channels, conv2_kernel, n2 : int
        Second conv, likewise.
    hidden, n3 : int
        Hidden linear units and packing factor.
    classes, n4 : int
        Output classes and packing factor of the output layer.
    conv1_density, conv2_density : float
        Local k-WTA density of each conv block (winners per position / C).
    hidden_density : float
        Global k-WTA density of the hidden layer.
    boost_strength, boost_strength_factor : float
        k-WTA boosting (training only) and its per-epoch decay.
    duty_cycle_period : int
        k-WTA duty cycle averaging period, in samples.
    k_inference_factor : float
        Scale of k in eval mode; keep 1.0 for hardware export.
    kwta_noise : float
        Standard deviation of Gaussian noise added to every k-WTA input in
        training only, in batch-norm units (0 = none). It trains the layers
        after a k-WTA not to hinge on near-ties at the k-th place, which
        int8 rounding re-orders: see docs/model.md.
    dense : bool
        Dense activations: ReLU instead of k-WTA. With all ``n* == 1``
        this is the dense baseline (:meth:`dense_baseline`); with ``n > 1``
        it is the paper's "sparse-dense" variant.
    mask_seed : int
        Seed of the complementary assignments (layer i uses mask_seed + i).
    pattern : str
        Structure of the complementary assignments (:mod:`.patterns`):
        ``random`` (default), one pattern for every layer with ``n > 1``
        (``nm:N:M``, ``block:K``), or ``LAYER=PATTERN,...``.
    ift : str
        Sparse Iso-FLOP Transformation the network was built with
        (:mod:`.ift`): ``none``, ``wide`` (the widths and ``n`` above are
        the widened ones) or ``parallel`` (conv1, conv2 and fc1 trained as
        :attr:`branches` batch-normalised branches, folded for export).
    branches : int
        Sparse Parallel branches; 1 for ``none`` / ``wide`` and for a
        folded ``parallel`` network (:meth:`GSCNet.folded`).
    features : str
        Per-band normalisation of the input features the network is trained
        on and must be fed (:data:`cosparse.sw.features.NORMALISATIONS`):
        ``none`` (default; checkpoints from before the field), ``band-mean``
        or ``band-floor``. Export records it in the NetSpec's ``input.quant``.
    """

    in_shape: tuple = (1, 32, 32)
    conv1_channels: int = 64
    conv1_kernel: int = 5
    n1: int = 4
    conv2_channels: int = 64
    conv2_kernel: int = 5
    n2: int = 8
    hidden: int = 1500
    n3: int = 20
    classes: int = 12
    n4: int = 4
    conv1_density: float = 0.125
    conv2_density: float = 0.125
    hidden_density: float = 0.1
    boost_strength: float = 1.5
    boost_strength_factor: float = 0.9
    duty_cycle_period: int = 1000
    k_inference_factor: float = 1.0
    kwta_noise: float = 0.0
    dense: bool = False
    mask_seed: int = 0
    pattern: str = "random"
    ift: str = "none"
    branches: int = 1
    features: str = "none"

    def __post_init__(self):
        object.__setattr__(self, "in_shape", tuple(self.in_shape))
        self._validate()

    def _validate(self):
        if len(self.in_shape) != 3 or any(
                not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in self.in_shape):
            raise ValueError(f"in_shape must be three positive ints (C, H, W), got {self.in_shape}")
        for name in ("conv1_channels", "conv1_kernel", "n1", "conv2_channels", "conv2_kernel",
                     "n2", "hidden", "n3", "classes", "n4", "duty_cycle_period", "branches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name in ("conv1_density", "conv2_density", "hidden_density"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if self.boost_strength < 0:
            raise ValueError(f"boost_strength must be >= 0, got {self.boost_strength}")
        if not 0.0 <= self.boost_strength_factor <= 1.0:
            raise ValueError(f"boost_strength_factor must be in [0, 1], got {self.boost_strength_factor}")
        if self.k_inference_factor <= 0:
            raise ValueError(f"k_inference_factor must be > 0, got {self.k_inference_factor}")
        if not self.kwta_noise >= 0:
            raise ValueError(f"kwta_noise must be >= 0, got {self.kwta_noise}")
        if self.ift not in IFT_VARIANTS:
            raise ValueError(f"ift must be one of {', '.join(IFT_VARIANTS)}, got {self.ift!r}")
        check_normalisation(self.features)
        if self.branches > 1 and self.ift != "parallel":
            raise ValueError(f"branches = {self.branches} needs ift='parallel' (got "
                             f"{self.ift!r}); use branches=1")
        self.feature_shapes()
        self.layer_patterns()

    def layer_patterns(self):
        """``{layer: Pattern}`` of :attr:`pattern` (ValueError naming a layer it cannot fit)."""
        return layer_patterns(self.pattern, {"conv1": self.n1, "conv2": self.n2,
                                             "fc1": self.n3, "fc2": self.n4})

    def feature_shapes(self):
        """Spatial shapes after each conv block's conv and pool.

        Returns
        -------
        dict
            ``{"conv1": (C, H, W), "pool1": ..., "conv2": ..., "pool2": ...}``.

        Raises
        ------
        ValueError
            When a convolution or pooling would leave no output.
        """
        _, h, w = self.in_shape
        shapes = {}
        for i, (c, k) in enumerate(((self.conv1_channels, self.conv1_kernel),
                                    (self.conv2_channels, self.conv2_kernel)), start=1):
            h, w = h - k + 1, w - k + 1
            if h < 2 or w < 2:
                raise ValueError(f"conv{i}_kernel = {k} leaves a {h}x{w} map, too small to pool "
                                 f"(in_shape {self.in_shape})")
            shapes[f"conv{i}"] = (c, h, w)
            h, w = h // 2, w // 2
            shapes[f"pool{i}"] = (c, h, w)
        return shapes

    @property
    def flat_features(self):
        """Inputs of fc1: ``C*H*W`` after the second pool."""
        return math.prod(self.feature_shapes()["pool2"])

    @classmethod
    def dense_baseline(cls, **overrides):
        """The dense baseline: every ``n = 1`` and ReLU instead of k-WTA."""
        return cls(**{"n1": 1, "n2": 1, "n3": 1, "n4": 1, "dense": True, **overrides})

    @classmethod
    def from_dict(cls, data):
        """Rebuild from :func:`dataclasses.asdict` output, rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown NetConfig fields: {unknown}")
        return cls(**data)

    def to_dict(self):
        """Plain-JSON-friendly dict (``in_shape`` as a list)."""
        d = asdict(self)
        d["in_shape"] = list(self.in_shape)
        return d

    def replace(self, **changes):
        """Copy with ``changes`` applied (validated)."""
        return replace(self, **changes)


class GSCNet(nn.Module):
    """The GSC CNN built from a :class:`NetConfig`.

    Attributes
    ----------
    conv1, conv2 : CompSparseConv2d
    fc1, fc2 : CompSparseLinear
    bn1, bn2 : nn.BatchNorm2d (affine=False)
    bn3 : nn.BatchNorm1d (affine=False)
    pool1, pool2 : nn.MaxPool2d(2)
    kwta1, kwta2 : KWinners2d (local), or nn.ReLU when ``config.dense``
    kwta3 : KWinners (global), or nn.ReLU when ``config.dense``
    config : NetConfig
    """

    def __init__(self, config=None):
        super().__init__()
        config = NetConfig() if config is None else config
        if not isinstance(config, NetConfig):
            raise TypeError(f"config must be a NetConfig, got {type(config).__name__}")
        self.config = c = config
        shapes = c.feature_shapes()
        patterns = {name: str(p) for name, p in c.layer_patterns().items()}
        b = c.branches
        self.conv1 = CompSparseConv2d(c.in_shape[0], c.conv1_channels, c.conv1_kernel, c.n1,
                                      seed=c.mask_seed, pattern=patterns["conv1"], branches=b)
        self.bn1 = nn.BatchNorm2d(c.conv1_channels, affine=False)
        self.pool1 = nn.MaxPool2d(2)
        self.kwta1 = self._kwta2d(c.conv1_channels, c.conv1_density)
        self.conv2 = CompSparseConv2d(c.conv1_channels, c.conv2_channels, c.conv2_kernel, c.n2,
                                      seed=c.mask_seed + 1, pattern=patterns["conv2"],
                                      branches=b)
        self.bn2 = nn.BatchNorm2d(c.conv2_channels, affine=False)
        self.pool2 = nn.MaxPool2d(2)
        self.kwta2 = self._kwta2d(c.conv2_channels, c.conv2_density)
        flat = math.prod(shapes["pool2"])
        self.fc1 = CompSparseLinear(flat, c.hidden, c.n3, seed=c.mask_seed + 2,
                                    pattern=patterns["fc1"], branches=b)
        self.bn3 = nn.BatchNorm1d(c.hidden, affine=False)
        self.kwta3 = nn.ReLU() if c.dense else KWinners(
            c.hidden, c.hidden_density, **self._boost_kwargs())
        self.fc2 = CompSparseLinear(c.hidden, c.classes, c.n4, seed=c.mask_seed + 3,
                                    pattern=patterns["fc2"])

    def _boost_kwargs(self):
        c = self.config
        return dict(boost_strength=c.boost_strength, boost_strength_factor=c.boost_strength_factor,
                    duty_cycle_period=c.duty_cycle_period, k_inference_factor=c.k_inference_factor,
                    noise=c.kwta_noise)

    def _kwta2d(self, channels, density):
        if self.config.dense:
            return nn.ReLU()
        return KWinners2d(channels, density, local=True, **self._boost_kwargs())

    def _stages(self):
        """(name, callable) pairs in execution order."""
        return [(name, getattr(self, name) if name != "flatten" else lambda t: t.flatten(1))
                for name in STAGES]

    def forward(self, x):
        """Logits ``[B, classes]`` from float features ``[B, C, H, W]`` (q / 127)."""
        for _, stage in self._stages():
            x = stage(x)
        return x

    def forward_with_activations(self, x):
        """Run the network and keep every stage's output.

        Meant for checking the integer model stage by stage. In training
        mode this updates BN statistics and duty cycles like ``forward``.

        Returns
        -------
        dict of str to torch.Tensor
            Keys :data:`STAGES` in execution order (``"fc2"`` holds the
            logits).
        """
        acts = {}
        for name, stage in self._stages():
            x = stage(x)
            acts[name] = x
        return acts

    @torch.no_grad()
    def folded(self):
        """The same network in eval mode with Sparse Parallel's branches folded.

        Each branched layer becomes the one complementary layer its branches
        compute in eval mode (:meth:`~.complementary._CompSparseBase.folded`):
        same assignments, same packed slots, ``branches = 1`` (``ift`` stays
        ``parallel`` as a record). A network without branches is returned as
        it is. The result is what the exporter packs.
        """
        if self.config.branches == 1:
            return self
        net = GSCNet(self.config.replace(branches=1))
        state = {k: v for k, v in self.state_dict().items()
                 if ".branch_norm." not in k and not k.endswith(".branch_of")}
        net.load_state_dict(state)
        for name in BRANCHED:
            layer = getattr(self, name)
            packed, bias = layer.folded()
            target = getattr(net, name)
            target.set_assignment(layer.slot_kernel.clone(), packed)
            target.bias.copy_(bias)
        return net.eval()

    def kwinners(self):
        """The k-WTA modules by name (empty for a dense model)."""
        return {name: m for name, m in self.named_children()
                if isinstance(m, (KWinners, KWinners2d))}

    def update_boost_strength(self):
        """Decay every k-WTA's boost strength; call once per epoch."""
        for m in self.kwinners().values():
            m.update_boost_strength()

    def nonzero_weights(self):
        """Actual non-zero entries of each layer's dense weight (bias excluded).

        Returns
        -------
        dict
            ``{"conv1": int, ..., "fc2": int, "total": int}``.
        """
        with torch.no_grad():
            counts = {name: int(getattr(self, name).dense_weight().count_nonzero())
                      for name in LAYERS}
        counts["total"] = sum(counts.values())
        return counts

    def count_parameters(self):
        """Weight counts per layer: dense equivalent, packed (stored) and bias.

        ``packed`` is the structural non-zero count: the number of weights
        the sparse layer keeps, i.e. ``groups * fan_in``.

        Returns
        -------
        dict
            ``{layer: {"dense": int, "packed": int, "bias": int}, ...,
            "total": {...}}``.
        """
        table = {}
        for name in LAYERS:
            layer = getattr(self, name)
            table[name] = {"dense": layer.out_features * layer.fan_in,
                           "packed": int((layer.slot_kernel >= 0).sum()),
                           "bias": 0 if layer.bias is None else layer.bias.numel()}
        table["total"] = {key: sum(table[n][key] for n in LAYERS)
                          for key in ("dense", "packed", "bias")}
        return table
