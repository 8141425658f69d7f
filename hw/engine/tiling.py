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

With stride ``s`` and zero padding ``p``, input ``(c, y, x)`` reaches output
``(oy, ox)`` through offset ``(ky, kx)`` when ``oy*s + ky - p = y`` (and the
same along x): the offsets that land are those with ``ky = y + p (mod s)``,
``s`` apart, so the outputs of one tile's offsets are still distinct modulo
``rows`` and the banks stay conflict-free. Which tiles an input coordinate
reaches, and where each bank's offset lands, is a small table per axis
(:meth:`Tiling.axis`), computed here once for the scatter's lookup tables
and the cycle model alike. Padding needs no zeros stored or sent: a padded
position is zero, and a zero is never scattered.
"""

from dataclasses import dataclass

__all__ = ["Tiling", "AxisTable"]


@dataclass(frozen=True)
class AxisTable:
    """Where the inputs of one axis land, for every input coordinate and tile.

    Attributes
    ----------
    tiles : list of list of int
        Per input coordinate ``v``, the tiles (along this axis) holding at least
        one offset that reaches an output, ascending. Empty where none does
        (stride above 1: a row between the rows the kernel samples).
    slots : list of list of list of (bool, int, int)
        ``slots[v][t][b]`` for bank row/column ``b``: ``(ok, src, addr)``, the
        offset ``src`` of tile ``t`` that reaches an output coordinate ``o``
        with ``o mod span = b`` and that output's entry coordinate ``addr``
        in the bank (taken modulo the bank extent: a ring's entry row).
    """

    tiles: list
    slots: list


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
    stride, padding : int
        The convolution's stride and zero padding (1 and 0 for a linear layer).
    window : int, optional
        Output rows the banks must hold at once (a ring, :mod:`.ring`); None
        holds the whole output map. The ring holds ``rows * bank_h`` rows,
        ``bank_h`` the smallest power of two that covers ``window``, or the
        whole map where that is no larger.
    in_width : int, optional
        The input's width, to store the weights column-rotated: which tile
        column lands in which bank column depends only on the input column
        and the tile (:meth:`axis`), a few patterns in all (``cols`` at
        stride 1, a rotation), so the weight memory can hold each word once
        per pattern, already in bank order, and the multiplier needs no
        column multiplexer (measured: two thirds of its LUTs,
        docs/hardware.md). None: one copy, rotated by multiplexers.

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
    col_patterns : list of tuple of int
        With ``in_width``: per stored copy of a word, the tile column each bank
        column takes; else ``[]``.
    col_phase : list of list of int
        With ``in_width``: ``col_phase[x][tx]``, the copy an input in column
        ``x`` uses for tile column ``tx``.
    """

    def __init__(self, kernel: int, offsets: int, out_hw: tuple, passes: int,
                 window: int | None = None, stride: int = 1, padding: int = 0,
                 in_width: int | None = None):
        for name, value in (("kernel", kernel), ("offsets", offsets), ("passes", passes),
                            ("stride", stride)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(padding, bool) or not isinstance(padding, int) \
                or not 0 <= padding < kernel:
            raise ValueError(f"padding must be an integer from 0 to kernel - 1 = {kernel - 1}, "
                             f"got {padding!r}")
        self.stride, self.padding = stride, padding
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
        self.col_patterns, self.col_phase = [], []
        if in_width is not None:
            if not isinstance(in_width, int) or isinstance(in_width, bool) or in_width < 1:
                raise ValueError(f"in_width must be a positive integer, got {in_width!r}")
            self.col_patterns, self.col_phase = self._patterns(self.cols_axis(in_width))

    @property
    def col_copies(self) -> int:
        """Copies of each word the weight memory stores (1 without column rotation)."""
        return max(1, len(self.col_patterns))

    @staticmethod
    def _patterns(table: "AxisTable") -> tuple:
        """The fewest column patterns that serve every (input column, tile), and which one each
        uses: a bank column no offset reaches takes any tile column, so partial patterns
        merge where they agree."""
        patterns, phase = [], []
        for per_tile in table.slots:
            row = []
            for banks in per_tile:
                want = [src if ok else None for ok, src, _ in banks]
                for index, have in enumerate(patterns):
                    if all(w is None or h is None or w == h for w, h in zip(want, have)):
                        patterns[index] = [h if w is None else w for w, h in zip(want, have)]
                        break
                else:
                    index = len(patterns)
                    patterns.append(want)
                row.append(index)
            phase.append(row)
        return [tuple(0 if v is None else v for v in p) for p in patterns], phase

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

    def axis(self, size: int, extent: int, span: int, bank: int) -> AxisTable:
        """The :class:`AxisTable` of one axis: ``size`` input and ``extent`` output
        coordinates, tiles ``span`` offsets long, ``bank`` entries per bank along it."""
        k, s, p = self.kernel, self.stride, self.padding
        tiles, slots = [], []
        for v in range(size):
            reached, per_tile = [], []
            for tile in range(k // span):
                banks = [(False, 0, 0)] * span
                for src in range(span):
                    num = v + p - (tile * span + src)
                    if num >= 0 and num % s == 0 and num // s < extent:
                        o = num // s
                        banks[o % span] = (True, src, o // span % bank)
                per_tile.append(banks)
                if any(ok for ok, _, _ in banks):
                    reached.append(tile)
            tiles.append(reached)
            slots.append(per_tile)
        return AxisTable(tiles, slots)

    def rows_axis(self, size: int) -> AxisTable:
        """:meth:`axis` along y for an input ``size`` rows high."""
        return self.axis(size, self.out_hw[0], self.rows, self.bank_h)

    def cols_axis(self, size: int) -> AxisTable:
        """:meth:`axis` along x for an input ``size`` columns wide."""
        return self.axis(size, self.out_hw[1], self.cols, self.bank_w)
