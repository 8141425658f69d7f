"""Offset tiles and accumulator banks: how many kernel offsets a conv engine does per cycle.

A convolution engine scatters one non-zero input ``(c, y, x)`` to the
outputs ``(y - ky, x - kx)`` of its valid kernel offsets. Doing several
offsets in one cycle needs that many accumulator writes per cycle without
conflict. An offset *tile* of ``rows x cols`` offsets (``ky`` in ``rows``
consecutive values, ``kx`` in ``cols``) reaches outputs whose coordinates
are all distinct modulo ``rows`` and modulo ``cols``, so ``rows * cols``
accumulator banks indexed by ``(oy mod rows, ox mod cols)`` take the tile's
writes conflict-free. The whole ``K x K`` kernel is one tile when
``offsets = K*K`` (one cycle per input and pass); ``offsets = 1`` walks the
offsets one by one.

Tiles must cover the kernel exactly, so ``offsets`` is either a divisor of
``K`` (a tile of ``1 x offsets``: part of a kernel row) or ``R*K`` with
``R`` dividing ``K`` (``R`` whole rows).

A conv engine whose input arrives position-major keeps only a *window* of
output rows (a ring, :mod:`.ring`): entry row ``oy // rows`` is taken
modulo ``bank_h``, a power of two, so the scatter's entry coordinate needs
no divider, only its low bits.
"""

__all__ = ["Tiling"]


class Tiling:
    """Tile shape, bank grid and bank depth of one packed layer's engine.

    Parameters
    ----------
    kernel : int
        Square kernel size ``K`` (1 for a linear layer).
    offsets : int
        Kernel offsets per cycle (see the module docstring).
    out_hw : (Ho, Wo)
        Output positions before pooling ((1, 1) for linear).
    passes : int
        Passes per tile (``ceil(groups / lanes)``).
    window : int, optional
        Output rows the banks must hold at once (a ring, :mod:`.ring`); None
        holds the whole output map. The ring holds ``rows * bank_h`` rows,
        ``bank_h`` the smallest power of two that covers ``window``, or the
        whole map where that is no larger.

    Attributes
    ----------
    rows, cols : int
        Tile shape; ``banks = rows * cols``.
    tiles_y, tiles_x : int
        Tiles per kernel column / row (``K // rows``, ``K // cols``).
    bank_h, bank_w : int
        Positions per bank along y and x (``ceil(Ho / rows)``, ``ceil(Wo / cols)``;
        with a window, ``bank_h`` entry rows of the ring).
    ring_rows : int
        Output rows the banks hold (``rows * bank_h``).
    depth : int
        Entries per bank: ``passes * bank_h * bank_w``; entry
        ``(q * bank_h + (oy // rows) % bank_h) * bank_w + ox // cols``.
    """

    def __init__(self, kernel: int, offsets: int, out_hw: tuple, passes: int,
                 window: int | None = None):
        for name, value in (("kernel", kernel), ("offsets", offsets), ("passes", passes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if kernel % offsets == 0:
            self.rows, self.cols = 1, offsets
        elif offsets % kernel == 0 and kernel % (offsets // kernel) == 0:
            self.rows, self.cols = offsets // kernel, kernel
        else:
            raise ValueError(f"offsets must divide the kernel size {kernel} or be R*{kernel} with "
                             f"R dividing {kernel}, got {offsets!r}")
        self.kernel, self.offsets, self.passes = kernel, offsets, passes
        self.out_hw = tuple(out_hw)
        self.banks = self.rows * self.cols
        self.tiles_y, self.tiles_x = kernel // self.rows, kernel // self.cols
        self.bank_h = -(-self.out_hw[0] // self.rows)
        if window is not None:
            if not isinstance(window, int) or isinstance(window, bool) or window < 1:
                raise ValueError(f"window must be a positive integer, got {window!r}")
            ring = 1 << max(1, (-(-window // self.rows) - 1).bit_length())
            self.bank_h = min(self.bank_h, ring)
        self.ring_rows = self.rows * self.bank_h
        self.bank_w = -(-self.out_hw[1] // self.cols)
        self.depth = passes * self.bank_h * self.bank_w

    def tiles(self) -> int:
        """Tiles per input channel: weight words per channel and pass."""
        return self.tiles_y * self.tiles_x

    def bank_of(self, oy: int, ox: int) -> int:
        """Bank holding output position ``(oy, ox)``."""
        return (oy % self.rows) * self.cols + ox % self.cols

    def entry_of(self, q: int, oy: int, ox: int) -> int:
        """Entry of position ``(oy, ox)`` and pass ``q`` in its bank."""
        return (q * self.bank_h + (oy // self.rows) % self.bank_h) * self.bank_w \
            + ox // self.cols
