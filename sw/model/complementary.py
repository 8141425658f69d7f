"""Complementary-sparse layers parameterised directly in packed form.

A complementary-sparse layer groups its output units (kernels) by ``n``. The
kernels of one group have disjoint supports that together cover the whole
fan-in, so the group can be overlaid into one dense *packed* kernel of
``fan_in`` weights, each tagged with the id of the kernel it belongs to.

The layers here store exactly that packed form: a trainable ``packed``
tensor of shape ``[groups, fan_in]`` and a ``slot_kernel`` buffer of the same
shape holding the kernel id of every packed slot. Weights outside a kernel's
support do not exist as parameters, so they are structurally zero before,
during and after training (no re-zeroing after optimiser steps) and a
checkpoint holds only the packed weights. The forward pass scatters the
packed weights into an ordinary dense weight and calls ``F.linear`` /
``F.conv2d``: PyTorch's dense CPU kernels are faster than any sparse path at
these sizes, and the scatter is differentiable.

Fan-in index order is PyTorch's weight layout flattened: for a linear layer
``f`` is the input index, for a convolution ``f = c_in*K*K + ky*K + kx``.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .patterns import draw, parse_pattern

EMPTY = -1
"""Kernel id of a packed slot that belongs to no kernel.

:func:`complementary_assignment` never produces empty slots: it deals every
fan-in position to some kernel. Empty slots exist so that an assignment
built elsewhere (e.g. edited by hand or by an exporter) can leave positions
unused; :meth:`_CompSparseBase.dense_weight` ignores them and their packed
weights are kept at zero. Note the opposite case, a kernel with no slot, is
what happens when ``fan_in < n``: that kernel's weight row is all zero and it
outputs only its bias.
"""


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def group_sizes(out_features, n):
    """Number of kernels in each group.

    Parameters
    ----------
    out_features : int
        Number of output units (kernels).
    n : int
        Packing factor: kernels per group.

    Returns
    -------
    list of int
        ``n`` for every group except possibly the last, which holds the
        remaining ``out_features % n`` kernels when that is not zero.
    """
    _check_positive_int("out_features", out_features)
    _check_positive_int("n", n)
    groups = math.ceil(out_features / n)
    return [min(n, out_features - g * n) for g in range(groups)]


def complementary_assignment(out_features, fan_in, n, generator=None):
    """Deal each group's fan-in positions to its kernels at random.

    Group ``g`` holds output units ``g*n + j`` for ``j`` in ``[0, n_g)``.
    The group's ``fan_in`` positions are randomly permuted and dealt
    round-robin to its ``n_g`` kernels, so supports are disjoint, cover the
    whole fan-in and their sizes differ by at most one. This is what lets a
    group be packed into one dense kernel with no empty slot.

    Parameters
    ----------
    out_features : int
        Number of output units.
    fan_in : int
        Inputs per output unit (``in_features`` or ``in_channels*K*K``).
    n : int
        Packing factor.
    generator : torch.Generator, optional
        Source of the permutations; pass a seeded one for reproducibility.

    Returns
    -------
    torch.LongTensor
        ``slot_kernel`` of shape ``[groups, fan_in]``; entry ``[g, f]`` is
        the kernel id ``j`` in ``[0, n_g)`` that owns fan-in position ``f``.
    """
    _check_positive_int("fan_in", fan_in)
    sizes = group_sizes(out_features, n)
    slot_kernel = torch.empty(len(sizes), fan_in, dtype=torch.long)
    deal = torch.arange(fan_in)
    for g, n_g in enumerate(sizes):
        perm = torch.randperm(fan_in, generator=generator)
        slot_kernel[g, perm] = deal % n_g
    return slot_kernel


def _validate_slot_kernel(slot_kernel, sizes, fan_in):
    """Raise ValueError unless ``slot_kernel`` fits the layer's groups."""
    if not isinstance(slot_kernel, torch.Tensor):
        raise TypeError(f"slot_kernel must be a tensor, got {type(slot_kernel).__name__}")
    if tuple(slot_kernel.shape) != (len(sizes), fan_in):
        raise ValueError(
            f"slot_kernel has shape {tuple(slot_kernel.shape)}, expected "
            f"(groups, fan_in) = ({len(sizes)}, {fan_in})")
    upper = torch.tensor(sizes).unsqueeze(1)
    bad = (slot_kernel < EMPTY) | (slot_kernel >= upper)
    if bad.any():
        g, f = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"slot_kernel[{g}, {f}] = {int(slot_kernel[g, f])} is out of range "
            f"[{EMPTY}, {sizes[g]}) for group {g}")


class _CompSparseBase(nn.Module):
    """Shared packed parameters, scatter and init of the sparse layers.

    Parameters
    ----------
    out_features : int
        Output units (kernels).
    fan_in : int
        Inputs per kernel.
    n : int
        Packing factor; ``n == 1`` gives an ordinary dense layer.
    bias : bool
        Whether to learn a bias per output unit.
    seed : int
        Seed of the random complementary assignment.
    slot_kernel : torch.Tensor, optional
        An explicit assignment (may contain :data:`EMPTY`); by default one
        is drawn with :func:`complementary_assignment`, or with
        :func:`~.patterns.draw` for a structured ``pattern``.
    pattern : str
        ``random``, ``nm:N:M`` or ``block:K`` (:mod:`cosparse.sw.netspec.pattern`):
        the structure every assignment of this layer follows, checked on
        every :meth:`set_assignment` and stated in its NetSpec layer.
    kernel : int
        Convolution kernel size (a block runs along input channels), 1 for linear.
    branches : int
        Sparse Parallel training branches (:meth:`folded`); 1: none.
    """

    def __init__(self, out_features, fan_in, n, bias, seed, slot_kernel, pattern="random",
                 kernel=1, branches=1):
        super().__init__()
        _check_positive_int("branches", branches)
        sizes = group_sizes(out_features, n)
        structure = parse_pattern(pattern)
        structure.check_group(n, "layer")
        self.pattern, self.pattern_kernel = str(structure), kernel
        if slot_kernel is None:
            gen = torch.Generator().manual_seed(int(seed))
            slot_kernel = (draw(structure, sizes, fan_in, gen, kernel) if structure.structured
                           else complementary_assignment(out_features, fan_in, n, gen))
        _validate_slot_kernel(slot_kernel, sizes, fan_in)
        self._check_pattern(slot_kernel)
        self.n = n
        self.out_features = out_features
        self.fan_in = fan_in
        self.groups = len(sizes)
        # int16 halves the checkpoint versus int64; ids are < n <= 32767.
        if n > torch.iinfo(torch.int16).max:
            raise ValueError(f"n must be <= 32767, got {n}")
        self.register_buffer("slot_kernel", slot_kernel.to(torch.int16).clone())
        self.register_buffer("_scatter_src", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("_scatter_dst", torch.empty(0, dtype=torch.long), persistent=False)
        self._build_scatter_index()
        self.packed = nn.Parameter(torch.empty(self.groups, fan_in))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.branches = branches
        if branches > 1:
            # Each kernel's weights are dealt to the branches once: its owned positions
            # first, round-robin in a random order, so every branch gets a near-equal share
            # of the support (then the unowned ones, which a learned mask may still claim).
            gen = torch.Generator().manual_seed(int(seed) + 104729)
            owned = torch.zeros(out_features * fan_in)
            owned[self._scatter_dst] = 1.0
            key = torch.rand(out_features, fan_in, generator=gen) + 2 * (1 - owned.view(
                out_features, fan_in))
            rank = key.argsort(1).argsort(1)
            self.register_buffer("branch_of", (rank % branches).to(torch.int8))
            self.branch_norm = self._branch_norm(branches * out_features)
        self.weight_source = None
        """Callable ``layer -> [out_features, fan_in]`` weight that replaces the packed one.

        ``None`` (always, outside training with a learned mask): the forward
        pass uses :meth:`packed_weight_2d`. A mask scheduler
        (:mod:`cosparse.sw.model.masks`) sets it while it trains dense
        candidates or needs the dense weight's gradient; it is neither a
        parameter nor saved.
        """
        self.reset_parameters()

    def _build_scatter_index(self):
        """Precompute where each packed weight lands in the flat dense weight.

        Packed slot ``(g, f)`` with kernel id ``j`` goes to row ``g*n + j``,
        column ``f``. Empty slots are dropped from the index.
        """
        sk = self.slot_kernel.long()
        rows = torch.arange(self.groups, device=sk.device).unsqueeze(1) * self.n + sk
        flat_dst = rows * self.fan_in + torch.arange(self.fan_in, device=sk.device)
        used = (sk != EMPTY).reshape(-1)
        self._scatter_src = used.nonzero().squeeze(1)
        self._scatter_dst = flat_dst.reshape(-1)[self._scatter_src]

    def _check_pattern(self, slot_kernel):
        """ValueError unless ``slot_kernel`` follows :attr:`pattern`."""
        structure = parse_pattern(self.pattern)
        if not structure.structured:
            return
        ids = slot_kernel.detach().cpu().long()
        broken = structure.violation(torch.where(ids == EMPTY, 255, ids).numpy(),
                                     self.pattern_kernel)
        if broken is not None:
            raise ValueError(f"slot_kernel breaks pattern {self.pattern}: {broken}")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A loaded slot_kernel replaces the drawn one: rebuild the index.
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._build_scatter_index()

    @torch.no_grad()
    def set_assignment(self, slot_kernel, packed):
        """Replace the assignment and the packed weights (a learned mask's update).

        Parameters
        ----------
        slot_kernel : torch.Tensor
            ``[groups, fan_in]`` kernel ids in ``[EMPTY, n_g)``; validated.
        packed : torch.Tensor
            ``[groups, fan_in]`` weights; those of :data:`EMPTY` slots are
            stored as 0, so an empty slot never holds a stale weight.
        """
        _validate_slot_kernel(slot_kernel.cpu(), group_sizes(self.out_features, self.n),
                              self.fan_in)
        self._check_pattern(slot_kernel)
        self.slot_kernel.copy_(slot_kernel)
        self.packed.copy_(torch.where(slot_kernel == EMPTY, 0.0, packed))
        self._build_scatter_index()

    def kernel_fan_in(self):
        """Support size of each output unit, shape ``[out_features]``.

        Returns
        -------
        torch.LongTensor
            Number of packed slots owned by each kernel (its real fan-in).
        """
        counts = torch.zeros(self.out_features * self.fan_in, dtype=torch.long,
                             device=self.slot_kernel.device)
        counts[self._scatter_dst] = 1
        return counts.view(self.out_features, self.fan_in).sum(1)

    @torch.no_grad()
    def reset_parameters(self):
        """Kaiming-uniform init on each kernel's real fan-in.

        A kernel sees only about ``fan_in / n`` inputs, so initialising on
        the full fan-in would shrink its output variance by ``n``. Each
        packed weight is drawn from ``U(-1/sqrt(m), 1/sqrt(m))`` where ``m``
        is its own kernel's support size (PyTorch's default linear/conv
        init, applied to the sparse kernel); empty slots are zero.
        """
        support = self.kernel_fan_in().clamp(min=1).float()
        bound_per_unit = support.rsqrt()
        flat = torch.zeros(self.groups * self.fan_in, device=self.packed.device)
        owner = self._scatter_dst // self.fan_in
        bound = bound_per_unit[owner]
        flat[self._scatter_src] = (torch.rand_like(bound) * 2 - 1) * bound
        self.packed.copy_(flat.view(self.groups, self.fan_in))
        if self.bias is not None:
            self.bias.uniform_(-1, 1).mul_(bound_per_unit)

    def dense_weight_2d(self):
        """Dense weight as ``[out_features, fan_in]``: :meth:`packed_weight_2d`
        unless :attr:`weight_source` replaces it."""
        if self.weight_source is not None:
            return self.weight_source(self)
        return self.packed_weight_2d()

    def packed_weight_2d(self):
        """Dense weight of the packed form, ``[out_features, fan_in]``, zero outside supports.

        Differentiable with respect to ``packed``: gradients of masked
        positions are simply never produced.
        """
        src = self.packed.reshape(-1)
        if self._scatter_src.numel() != src.numel():
            src = src[self._scatter_src]
        flat = src.new_zeros(self.out_features * self.fan_in)
        flat = flat.scatter(0, self._scatter_dst, src)
        return flat.view(self.out_features, self.fan_in)

    def branch_weights_2d(self):
        """``[branches * out_features, fan_in]``: the dense weight split by :attr:`branch_of`.

        Row ``b * out_features + r`` holds kernel ``r``'s weights dealt to
        branch ``b`` and zeros elsewhere; the branches sum to
        :meth:`dense_weight_2d`.
        """
        weight = self.dense_weight_2d()
        split = torch.arange(self.branches, device=weight.device)[:, None, None] \
            == self.branch_of.long()[None]
        return (weight[None] * split).reshape(self.branches * self.out_features, self.fan_in)

    def _sum_branches(self, y):
        """Normalise each branch's outputs (``[B, branches * out, ...]``), sum, add the bias."""
        y = self.branch_norm(y)
        y = y.view(y.shape[0], self.branches, self.out_features, *y.shape[2:]).sum(1)
        if self.bias is None:
            return y
        return y + self.bias.view(1, -1, *([1] * (y.dim() - 2)))

    @torch.no_grad()
    def folded(self):
        """``(packed, bias)`` of the one complementary layer the branches compute in eval mode.

        In eval mode branch ``b`` of kernel ``r`` computes ``(w_b . x - mu_b)
        / s_b`` with its batch norm's running mean ``mu_b`` and ``s_b =
        sqrt(var_b + eps)``; their sum is one kernel with weights ``w / s_b``
        on the positions dealt to branch ``b`` and bias ``bias - sum_b mu_b /
        s_b``. The supports do not change, so the folded layer has the same
        assignment, packed slots and NetSpec as a layer trained without
        branches (:meth:`folded` of an unbranched layer returns its own).
        """
        bias = torch.zeros(self.out_features) if self.bias is None else self.bias.detach().clone()
        if self.branches == 1:
            return self.packed.detach().clone(), bias
        norm = self.branch_norm
        scale = (norm.running_var.double() + norm.eps).sqrt().view(self.branches, -1)
        mean = norm.running_mean.double().view(self.branches, -1)
        weight = self.packed_weight_2d().double()
        divisor = scale.t().gather(1, self.branch_of.long())  # s_b of each position's branch
        dense = (weight / divisor).float()
        sk = self.slot_kernel.long()
        rows = torch.arange(self.groups)[:, None] * self.n + sk.clamp(min=0)
        packed = dense.gather(0, rows.clamp(max=self.out_features - 1)) * (sk != EMPTY)
        return packed, (bias.double() - (mean / scale).sum(0)).float()

    def extra_repr(self):
        return (f"fan_in={self.fan_in}, out={self.out_features}, n={self.n}, "
                f"groups={self.groups}, bias={self.bias is not None}"
                + (f", pattern={self.pattern}" if self.pattern != "random" else "")
                + (f", branches={self.branches}" if self.branches > 1 else ""))


class CompSparseLinear(_CompSparseBase):
    """Linear layer with complementary-sparse weights in packed form.

    Parameters
    ----------
    in_features, out_features : int
        As :class:`torch.nn.Linear`.
    n : int
        Packing factor: each kernel keeps about ``1/n`` of its weights.
    bias : bool
        Learn a bias per output unit.
    seed : int
        Seed of the random complementary assignment.
    slot_kernel : torch.Tensor, optional
        Explicit assignment ``[groups, in_features]``.
    pattern : str
        Structure of the assignment (``random``, ``nm:N:M``, ``block:K``:
        blocks of ``K`` consecutive inputs).
    branches : int
        Sparse Parallel: train as this many batch-normalised branches,
        summed (:meth:`folded` gives the one layer they compute).

    Attributes
    ----------
    packed : nn.Parameter
        ``[groups, in_features]`` packed weights.
    slot_kernel : torch.Tensor
        ``[groups, in_features]`` int16 kernel id per slot (-1 = empty).
    bias : nn.Parameter or None
        ``[out_features]``.
    n, groups, fan_in : int
    """

    def __init__(self, in_features, out_features, n, bias=True, seed=0, slot_kernel=None,
                 pattern="random", branches=1):
        _check_positive_int("in_features", in_features)
        super().__init__(out_features, in_features, n, bias, seed, slot_kernel, pattern,
                         branches=branches)
        self.in_features = in_features

    @staticmethod
    def _branch_norm(features):
        return nn.BatchNorm1d(features, affine=False)

    def dense_weight(self):
        """Full weight ``[out_features, in_features]``."""
        return self.dense_weight_2d()

    def forward(self, x):
        if self.branches > 1:
            return self._sum_branches(F.linear(x, self.branch_weights_2d()))
        return F.linear(x, self.dense_weight(), self.bias)


class CompSparseConv2d(_CompSparseBase):
    """2-D convolution (square kernel, stride, zero padding) with packed complementary weights.

    Parameters
    ----------
    in_channels, out_channels : int
        As :class:`torch.nn.Conv2d`.
    kernel_size : int
        Square kernel size ``K``.
    n : int
        Packing factor.
    stride : int
        Step between output positions, both axes (as :class:`torch.nn.Conv2d`).
    padding : int
        Zeros added on every side, from 0 to ``K - 1``.
    bias : bool
        Learn a bias per output channel.
    seed : int
        Seed of the random complementary assignment.
    slot_kernel : torch.Tensor, optional
        Explicit assignment ``[groups, in_channels*K*K]``.
    pattern : str
        Structure of the assignment (``random``, ``nm:N:M``, ``block:B``:
        blocks of ``B`` consecutive input channels at one kernel offset).
    branches : int
        Sparse Parallel training branches, as :class:`CompSparseLinear`.

    Attributes
    ----------
    packed : nn.Parameter
        ``[groups, in_channels*K*K]``; slot ``f = c_in*K*K + ky*K + kx``.
    slot_kernel : torch.Tensor
        Same shape, int16 kernel id per slot (-1 = empty).
    bias : nn.Parameter or None
        ``[out_channels]``.
    n, groups, fan_in : int
    """

    def __init__(self, in_channels, out_channels, kernel_size, n, bias=True, seed=0,
                 slot_kernel=None, stride=1, padding=0, pattern="random", branches=1):
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("kernel_size", kernel_size)
        _check_positive_int("stride", stride)
        if isinstance(padding, bool) or not isinstance(padding, int) \
                or not 0 <= padding < kernel_size:
            raise ValueError(f"padding must be an int from 0 to kernel_size - 1 = "
                             f"{kernel_size - 1}, got {padding!r}")
        super().__init__(out_channels, in_channels * kernel_size * kernel_size, n, bias, seed,
                         slot_kernel, pattern, kernel_size, branches)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def dense_weight(self):
        """Full weight ``[out_channels, in_channels, K, K]``."""
        k = self.kernel_size
        return self.dense_weight_2d().view(self.out_channels, self.in_channels, k, k)

    @staticmethod
    def _branch_norm(features):
        return nn.BatchNorm2d(features, affine=False)

    def forward(self, x):
        if self.branches > 1:
            k = self.kernel_size
            weight = self.branch_weights_2d().view(-1, self.in_channels, k, k)
            return self._sum_branches(F.conv2d(x, weight, stride=self.stride,
                                               padding=self.padding))
        return F.conv2d(x, self.dense_weight(), self.bias, stride=self.stride,
                        padding=self.padding)

    def extra_repr(self):
        return super().extra_repr() + (f", stride={self.stride}, padding={self.padding}"
                                       if (self.stride, self.padding) != (1, 0) else "")
