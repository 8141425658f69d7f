"""Window convolution engine: output-stationary, for a dense one-channel input.

The scatter engine (:mod:`.conv`) pays for sparsity with accumulator
memory: every non-zero input is added into ``K*K`` output positions, so
the sums of every position in reach live in read-modify-write RAM. A first
layer reads features that are mostly non-zero and have one channel; there
the other order is cheaper. This engine walks the *outputs*: each cycle it
takes one output position and one pass of ``lanes`` packed groups, reads
the ``K x K`` input window of that position from a line buffer, and forms
every kernel's sum at once in adder trees. Nothing is accumulated across
cycles, so there is no accumulator memory at all.

With one input channel, slot ``f = ky*K + kx`` of packed group ``g``
belongs to kernel ``kid[g][f]``, a constant: each kernel's sum is a fixed
adder tree over the products of its slots. With ``passes > 1`` a lane
serves several groups whose slots may belong to different kernels; a
product then enters the tree of each kernel it belongs to in some pass,
masked to zero in the passes where it belongs elsewhere (a slot whose
weight is zero in a pass needs no mask for it). Weights are constants
(one pass) or a small ROM indexed by the pass.

Data path, one register stage per step (the adder trees one adder level per
stage, so no stage holds more than one adder)::

    sparse in -> zero fill -> line buffer (ring of input rows, one memory word per column)
      -> column loader -> window register (double-buffered) -> sub-window of the pool
         position -> lanes x K*K products -> per-kernel adder trees (+ bias)
      -> FIFO -> VectorRequantiser -> VectorPool -> dense vector out

The data path never stalls: a pass enters it only with a credit, a FIFO slot
no pass in flight has claimed, so a stalled output stops the sequencer alone
(its ready is not an enable of every pipeline register).

The walk is :class:`~.drain.PositionDrain`'s: per pooled output (raster
order), each position of its pool window, each pass innermost, so the
requantiser and the pool take exactly the slices they take from that drain
and the output stream is identical: one beat per pooled position.

Cycles per input (:func:`window_cycles`): each pooled output takes
``max(pool*pool*passes, columns loaded + 2)`` cycles, where a pooled output
loads the ``min(pool*S, Wc)`` columns it does not share with the one before
it (``Wc = (pool - 1)*S + K``), and the first of a row all ``Wc``; at the
same time the input is written one position per cycle (``H*W``), or
``beat`` positions a cycle from dense raster beats (``H*W / beat``), and the
slower of the two sets the interval.

Input, two forms. Sparse (``beat=None``): ``(value, c, y, x)`` beats of the
non-zeros, the zeros between them filled here, one position per cycle, as
any engine's input. Dense (``beat=b``): ``b`` consecutive values of a row
per beat, raster order, as the network's features arrive; the line buffer
then holds ``b`` columns per memory word, so the writer stores ``b``
positions a cycle and the loader picks its column out of the word it reads.
A first layer whose window walk is fast enough is otherwise bound by the
one-position-per-cycle writer (the default GSC network at fewer winners:
``H*W`` = 1,024 cycles).
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...sw.netspec.layers import EMPTY_SLOT
from ..layouts import dense_vector_layout, sparse_layout, value_shape
from ..multiplier import RegisteredMultiplier, is_ecp5
from .position_out import CreditedOutput

__all__ = ["WindowConvEngine", "window_cycles", "window_geometry"]


def _lut(values, index):
    """``values[index]`` for a constant table (a small ROM in logic)."""
    return Array(Const(v, range(min(0, min(values)), max(values) + 1)) for v in values)[index]


def _signed_bits(bound: int) -> int:
    """Width of a signed value with ``|value| <= bound``."""
    return bound.bit_length() + 1


def pipeline_registers():
    """``(reg, statements)``: ``reg(value, shape, name)`` returns a new register loaded with
    ``value`` every cycle, its assignment appended to ``statements`` (add them to the sync
    domain once the data path is built): registers without an enable, for a data path that
    never stalls."""
    statements = []

    def reg(value, shape, name):
        r = Signal(shape, name=name)
        statements.append(r.eq(value))
        return r

    return reg, statements


def check_output_stationary(layer, config, pool) -> None:
    """The checks an output-stationary conv engine (window, gather) makes of ``layer`` (a
    Conv2d), ``config`` and ``pool``: ValueError naming the bad value."""
    if layer.requant is None:
        raise ValueError(f"layer {layer.name!r}: a conv2d without requant (int32 outputs) "
                         f"is not built")
    _, ho, wo = layer.out_shape
    if not isinstance(pool, int) or isinstance(pool, bool) or pool < 1 \
            or ho % pool or wo % pool:
        raise ValueError(f"layer {layer.name!r}: pool must be a positive integer dividing "
                         f"the output {(ho, wo)}, got {pool!r}")
    lanes = config.lanes
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
        raise ValueError(f"layer {layer.name!r}: lanes must be a positive integer, "
                         f"got {lanes!r}")
    bound = layer.accumulator_bound()
    if not isinstance(config.acc_bits, int) or _signed_bits(bound) > config.acc_bits:
        raise ValueError(f"layer {layer.name!r}: acc_bits = {config.acc_bits!r} cannot hold "
                         f"the accumulator bound {bound}")


def lane_bias(layer, lanes: int, passes: int, lane: int, j: int) -> list:
    """Bias of sum ``j`` (kernel ``j`` of the lane's group) of ``lane`` in each of ``passes``
    passes of ``lanes`` groups (0 past the last channel)."""
    values = []
    for q in range(passes):
        channel = (q * lanes + lane) * layer.n + j
        values.append(int(layer.bias[channel]) if channel < layer.out_channels else 0)
    return values


def window_geometry(layer, pool: int) -> dict:
    """Window and line-buffer sizes of ``layer`` with a fused ``pool``.

    ``rows``/``cols``: the input rows and columns one pooled output reads
    (``(pool - 1)*S + K``); ``step``: columns new to each next pooled output
    of a row (``min(pool*S, cols)``); ``ring``: input rows the line buffer
    holds, a power of two of at least ``2 * (rows + S)``, so the next input's
    first rows can be written while the last rows of this one are read.
    """
    k, s = layer.kernel, layer.stride
    rows = (pool - 1) * s + k
    ring = 1 << (2 * (rows + s) - 1).bit_length()
    return {"rows": rows, "cols": rows, "step": min(pool * s, rows), "ring": ring}


def window_cycles(layer, pool: int, passes: int, beat: int = 1) -> int:
    """Modelled cycles per input of a window engine fed without gaps (module docstring),
    written ``beat`` positions a cycle."""
    geometry = window_geometry(layer, pool)
    _, ho, wo = layer.out_shape
    _, h, w = layer.in_shape
    per = pool * pool * passes
    row = max(per, geometry["cols"] + 2) + (wo // pool - 1) * max(per, geometry["step"] + 2)
    return max(-(-h * w // beat), (ho // pool) * row)


class WindowConvEngine(wiring.Component):
    """A conv2d layer on a one-channel input (optional fused max-pool), output-stationary.

    Parameters
    ----------
    layer : Conv2d
        The NetSpec layer: one input channel, requantised.
    config : LayerConfig
        ``lanes`` (groups per cycle) and ``acc_bits`` (the width handed to
        requantisation); ``offsets`` is not used (every cycle does the whole
        kernel).
    pool : int
        Max-pool window fused after requantisation (1: none).
    beat : int or None
        None: sparse input. An int ``b`` dividing the input's width ``W``:
        dense input, ``b`` positions per beat (module docstring).

    Ports
    -----
    i : sparse ``(value, c, y, x)`` activations of ``layer.in_shape`` in
        raster order, non-zeros only (the zeros are filled here), the
        empty-input rule of hw/layouts.py; with ``beat`` set,
        ``dense_vector_layout(beat)``: ``H*W / beat`` beats per input in
        raster order, ``last`` on the final one (not checked here: the
        count delimits inputs).
    o : ``dense_vector_layout(out_channels, value_shape(frac_bits))``: one
        beat per (pooled) output position in raster order, all channels.
    busy : high while an input is being written, read or computed.
    work : high in a cycle in which a window pass enters the multipliers (useful work;
        ``busy`` without ``work`` is waiting: for input rows, or for requantisation).
    """

    def __init__(self, layer, config, pool: int = 1, beat: int | None = None):
        if getattr(layer, "kind", None) != "conv2d":
            raise TypeError(f"layer must be a Conv2d, got {type(layer).__name__}")
        c, h, w = layer.in_shape
        if c != 1:
            raise ValueError(f"layer {layer.name!r}: the window engine reads a one-channel input "
                             f"(its flat order is raster order), but the input has {c} channels; "
                             f"build it with engine 'scatter'")
        check_output_stationary(layer, config, pool)
        lanes = config.lanes
        if beat is not None and (not isinstance(beat, int) or isinstance(beat, bool)
                                 or beat < 1 or w % beat):
            divisors = [d for d in range(1, w + 1) if w % d == 0]
            raise ValueError(f"layer {layer.name!r}: beat must be None (sparse input) or a "
                             f"number of positions dividing the input width {w} (one of "
                             f"{divisors}), got {beat!r}")
        self._layer, self._lanes, self._pool, self._beat = layer, lanes, pool, beat
        self._acc_bits = config.acc_bits
        self._passes = config.passes(layer.groups)
        self._geo = window_geometry(layer, pool)
        source = sparse_layout((1, h, w)) if beat is None else dense_vector_layout(beat)
        super().__init__({
            "i": In(stream.Signature(source)),
            "o": Out(stream.Signature(dense_vector_layout(layer.out_channels,
                                                          value_shape(layer.requant.frac_bits)))),
            "busy": Out(1),
            "work": Out(1),
        })

    # -- constant tables -------------------------------------------------------------------

    def _slots(self, lane):
        """Per slot of ``lane``: its weight in each pass and its kernel id (None: empty)."""
        layer, passes = self._layer, self._passes
        kk = layer.kernel * layer.kernel
        weights = [[0] * passes for _ in range(kk)]
        kernels = [[None] * passes for _ in range(kk)]
        for q in range(passes):
            g = q * self._lanes + lane
            if g >= layer.groups:
                continue
            for f in range(kk):
                kid = int(layer.kernel_ids[g, f])
                if kid != EMPTY_SLOT:
                    weights[f][q], kernels[f][q] = int(layer.weights[g, f]), kid
        return weights, kernels

    def _leaves(self, m, platform, lane, reg, xs, q, q2):
        """Stage 2 of ``lane``: its products, and per kernel ``j`` the leaves of its tree
        (products, masked by the pass ``q2`` where they belong elsewhere, and the bias)
        with the bound of the kernel's sum. ``q`` is the pass at stage 0 (weight ROM);
        ``xs`` the sub-window, stage 1's registers, or on an ECP5 (where a
        :class:`~cosparse.hw.multiplier.RegisteredMultiplier` registers its operands in
        the MULT18X18D) the values they would load."""
        layer, passes, bits = self._layer, self._passes, int(self._layer.weight_bits)
        weights, kernels = self._slots(lane)
        products = {}
        for f, options in enumerate(weights):
            if not any(options):
                continue  # an empty slot in every pass: no multiplier
            bound = 128 * max(abs(v) for v in options)
            if is_ecp5(platform):
                # The operand and product registers in a MULT18X18D; a weight fixed in every
                # pass is a constant operand.
                fixed = len(set(options)) == 1
                m.submodules[f"multiplier_{lane}_{f}"] = multiplier = RegisteredMultiplier(
                    signed(8), signed(bits), constant=options[0] if fixed else None)
                m.d.comb += [multiplier.a.eq(xs[f]), multiplier.en.eq(1)]
                if not fixed:
                    m.d.comb += multiplier.b.eq(Array(Const(v, signed(bits)) for v in options)[q])
                products[f] = (multiplier.p, bound)
                continue
            if len(set(options)) == 1:
                operand = Const(options[0], signed(bits))
            else:
                rom = Array(Const(v, signed(bits)) for v in options)
                operand = reg(rom[q], signed(bits), f"w_{lane}_{f}")
            products[f] = (reg(xs[f] * operand, signed(8 + bits), f"p_{lane}_{f}"), bound)
        result = []
        for j in range(layer.n):
            bias = lane_bias(self._layer, self._lanes, self._passes, lane, j)
            limit = max(abs(bias[qq]) + sum(128 * abs(weights[f][qq])
                                            for f in products if kernels[f][qq] == j)
                        for qq in range(passes))
            leaves = []
            for f, (product, bound) in products.items():
                if not any(kernels[f][qq] == j for qq in range(passes)):
                    continue
                # A pass whose weight is 0 adds 0 wherever the product goes.
                mine = [kernels[f][qq] == j or weights[f][qq] == 0 for qq in range(passes)]
                if all(mine):
                    leaves.append((product, bound))
                else:
                    keep = Array(Const(int(v), 1) for v in mine)[q2]
                    leaves.append((Mux(keep, product, 0), bound))
            if any(bias):
                shape = signed(_signed_bits(max(map(abs, bias))))
                value = Const(bias[0], shape) if len(set(bias)) == 1 else \
                    Array(Const(v, shape) for v in bias)[q2]
                leaves.append((value, max(map(abs, bias))))
            result.append((leaves, limit))
        return result

    @staticmethod
    def _adder_tree(reg, leaves, limit, levels, name):
        """Sum ``(value, bound)`` leaves, one registered adder level per stage, over exactly
        ``levels`` stages; each node as wide as its bound, at most ``limit``."""
        leaves = leaves or [(Const(0, signed(2)), 0)]
        for level in range(levels):
            pairs = []
            for a in range(0, len(leaves), 2):
                if a + 1 < len(leaves):
                    (x, bx), (y, by) = leaves[a], leaves[a + 1]
                    value, bound = x + y, min(bx + by, limit)
                else:
                    (value, bound), = leaves[a:]
                pairs.append((reg(value, signed(_signed_bits(bound)),
                                  f"{name}_{level}_{a // 2}"), bound))
            leaves = pairs
        assert len(leaves) == 1
        return leaves[0][0]

    # -- elaboration -----------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        layer, geo, pool, passes = self._layer, self._geo, self._pool, self._passes
        k, s, p = layer.kernel, layer.stride, layer.padding
        _, h, w = layer.in_shape
        _, ho, wo = layer.out_shape
        ph, pw = ho // pool, wo // pool
        rows, cols, step, ring = geo["rows"], geo["cols"], geo["step"], geo["ring"]

        # ---- line buffer: word x holds columns x*b .. x*b+b-1 of every ring row, a byte per
        # (column, row), column-major within the word ----------------------------------------
        b = self._beat or 1
        m.submodules.lines = lines = Memory(shape=unsigned(8 * ring * b), depth=w // b, init=[])
        wport = lines.write_port(granularity=8)
        rport = lines.read_port()

        # ---- writer: b positions per cycle (sparse input: one, filling the zeros) ---------
        wy, wx = Signal(range(h)), Signal(range(w // b))
        wring = Signal(range(ring))     # ring row of input row wy
        held = Signal(range(ring + 1))  # ring rows begun and not yet released
        lead = Signal(range(ring + 2))  # inputs written whole that the loader has not finished
        begin = wx == 0
        room = ~begin | (held < ring)
        frame_end = (wy == h - 1) & (wx == w // b - 1)
        values = [Signal(signed(8), name=f"value_{j}") for j in range(b)]
        row_bit = Signal(ring)  # the byte enable of ring row wring within one column
        m.d.comb += row_bit.eq(1 << wring)
        if self._beat is None:
            tail = Signal()  # the input's last beat is in: the rest are zeros
            beat = self.i.payload
            match = self.i.valid & ~tail & (beat.y == wy) & (beat.x == wx)
            write = room & (tail | self.i.valid)
            m.d.comb += [values[0].eq(Mux(match, beat.value, 0)), self.i.ready.eq(room & match)]
            with m.If(write & match & beat.last & ~frame_end):
                m.d.sync += tail.eq(1)
            with m.If(write & frame_end):
                m.d.sync += tail.eq(0)
        else:
            tail = Const(0)
            write = room & self.i.valid
            m.d.comb += [values[j].eq(self.i.payload.values[j]) for j in range(b)]
            m.d.comb += self.i.ready.eq(room)
        m.d.comb += [
            wport.addr.eq(wx),
            wport.data.eq(Cat(*[value for value in values for _ in range(ring)])),
            wport.en.eq(Mux(write, Cat(*[row_bit] * b), 0)),
        ]
        written = Signal()  # an input's final position is written this cycle
        m.d.comb += written.eq(write & frame_end)
        with m.If(write):
            m.d.sync += wx.eq(wx + 1)
            with m.If(wx == w // b - 1):
                m.d.sync += [wx.eq(0), wy.eq(wy + 1), wring.eq(wring + 1)]
                with m.If(wy == h - 1):
                    m.d.sync += wy.eq(0)

        # ---- loader: reads the columns of the next window into a shift register -----------
        # Input rows of pooled row py: start(py) = py*pool*S - P .. + rows - 1.
        starts = [py * pool * s - p for py in range(ph)]
        clipped = [min(max(v, 0), h) for v in starts] + [h]
        # Rows written before a pooled row is read: its window's, and every row it releases
        # when done (at stride above 1 some are read by no window); the last: all (lead).
        need = [max(min(h, v + rows), clipped[py + 1]) for py, v in enumerate(starts[:-1])] + [h]
        release = [clipped[py + 1] - clipped[py] for py in range(ph)]
        row_ok = [sum(1 << r for r in range(rows) if 0 <= v + r < h) for v in starts]
        # The columns a pooled row reads, in the order the loader issues them: for each pooled
        # output px its new columns (all ``cols`` for the first); ``at`` walks this list.
        col_first = [px * pool * s - p + (0 if px == 0 else cols - step) for px in range(pw)]
        count = [cols if px == 0 else step for px in range(pw)]
        col_addr = [min(max(col_first[px] + c, 0), w - 1) for px in range(pw)
                    for c in range(count[px])]
        col_ok = [int(0 <= col_first[px] + c < w) for px in range(pw) for c in range(count[px])]
        col_last = [int(c == count[px] - 1) for px in range(pw) for c in range(count[px])]
        n_cols = len(col_addr)

        lpy, lpx = Signal(range(ph)), Signal(range(pw))
        rbase = Signal(range(ring))      # ring row of input row 0 of the loader's input
        full = Signal()                  # the shift register holds the next window
        issued = Signal()                # every column of it has been read
        band_ready = (lead != 0) | (wy >= _lut(need, lpy))
        issue = ~full & ~issued & band_ready
        r_valid, r_last, r_ok = Signal(), Signal(), Signal()
        r_rows = Signal(rows)
        r_ring = Signal(range(ring))
        r_column = Signal(range(b))  # column of the word read
        # The next column to issue: its index ``at`` in the row's list and, in registers, what
        # the tables hold for it (word address, column in the word, in range, last of its
        # window), looked up a cycle ahead from ``at`` so no table lies on the read address.
        at = Signal(range(n_cols))
        nxt = [(i + 1) % n_cols for i in range(n_cols)]
        addr = Signal(range(w // b), init=col_addr[0] // b)
        column_at = Signal(range(b), init=col_addr[0] % b)
        ok, last_col = Signal(init=col_ok[0]), Signal(init=col_last[0])
        m.d.comb += rport.addr.eq(addr)
        with m.If(issue):
            m.d.sync += [at.eq(Mux(at == n_cols - 1, 0, at + 1)),
                         addr.eq(_lut([col_addr[j] // b for j in nxt], at)),
                         ok.eq(_lut([col_ok[j] for j in nxt], at)),
                         last_col.eq(_lut([col_last[j] for j in nxt], at))]
            if b > 1:
                m.d.sync += column_at.eq(_lut([col_addr[j] % b for j in nxt], at))
            with m.If(last_col):
                m.d.sync += issued.eq(1)
        if b > 1:
            m.d.sync += r_column.eq(column_at)
        m.d.sync += [r_valid.eq(issue), r_last.eq(issue & last_col),
                     r_ok.eq(ok), r_rows.eq(_lut(row_ok, lpy)),
                     r_ring.eq(rbase + _lut([v % ring for v in starts], lpy))]

        shift = [[Signal(signed(8), name=f"shift_{r}_{c}") for c in range(cols)]
                 for r in range(rows)]
        column = Signal(8 * ring)  # the ring rows of the column read
        m.d.comb += column.eq(rport.data if b == 1 else Array(
            rport.data[8 * ring * j:8 * ring * (j + 1)] for j in range(b))[r_column])
        word = [column[8 * r:8 * r + 8].as_signed() for r in range(ring)]
        with m.If(r_valid):
            for r in range(rows):
                byte = Array(word)[(r_ring + r)[:max(1, (ring - 1).bit_length())]]
                m.d.sync += [shift[r][c].eq(shift[r][c + 1]) for c in range(cols - 1)]
                m.d.sync += shift[r][cols - 1].eq(Mux(r_ok & r_rows[r], byte, 0))
            with m.If(r_last):
                m.d.sync += [full.eq(1), issued.eq(0)]

        # ---- compute sequencer: pool position and pass of the window being computed -------
        advance = Signal()  # a pass may enter the data path: a FIFO slot is free for it
        window = [[Signal(signed(8), name=f"window_{r}_{c}") for c in range(cols)]
                  for r in range(rows)]
        cvalid, c_final = Signal(), Signal()
        wpos = Signal(range(pool * pool))
        q = Signal(range(passes))
        c_end = (wpos == pool * pool - 1) & (q == passes - 1)
        handoff = full & (~cvalid | (advance & c_end))
        with m.If(advance & cvalid):
            m.d.sync += q.eq(q + 1)
            with m.If(q == passes - 1):
                m.d.sync += [q.eq(0), wpos.eq(wpos + 1)]
                with m.If(wpos == pool * pool - 1):
                    m.d.sync += [wpos.eq(0), cvalid.eq(0)]

        freed = Signal(range(ring + 1))  # ring rows the loader releases this cycle
        finished = Signal()              # the loader has handed over an input's last window
        with m.If(handoff):
            m.d.sync += [window[r][c].eq(shift[r][c]) for r in range(rows) for c in range(cols)]
            m.d.sync += [cvalid.eq(1), full.eq(0),
                         c_final.eq((lpy == ph - 1) & (lpx == pw - 1)), lpx.eq(lpx + 1)]
            with m.If(lpx == pw - 1):
                m.d.comb += freed.eq(_lut(release, lpy))
                m.d.sync += [lpx.eq(0), lpy.eq(lpy + 1)]
                with m.If(lpy == ph - 1):
                    m.d.comb += finished.eq(1)
                    m.d.sync += [lpy.eq(0), rbase.eq(rbase + h)]
        m.d.sync += [held.eq(held + (write & begin) - freed), lead.eq(lead + written - finished)]

        # ---- data path: pipeline registers that advance every cycle (no enable: a stall of
        # requantisation reaches only the sequencer, through the FIFO's credits below) -------
        reg, regs = pipeline_registers()

        # Stage 1: the sub-window of the pool position (and the pass's weights, below).
        xs = []
        for ky in range(k):
            for kx in range(k):
                options = [window[(a // pool) * s + ky][(a % pool) * s + kx]
                           for a in range(pool * pool)]
                value = Array(options)[wpos] if pool > 1 else options[0]
                xs.append(value if is_ecp5(platform) else reg(value, signed(8), f"x_{ky}_{kx}"))
        v1 = reg(cvalid & advance, 1, "valid1")
        q1 = reg(q, range(passes), "pass1")
        last1 = reg(cvalid & advance & c_end & c_final, 1, "last1")

        lanes, n = self._lanes, layer.n
        q2 = reg(q1, range(passes), "pass2")
        trees = [(lane, j, leaves, limit)
                 for lane in range(lanes)
                 for j, (leaves, limit) in enumerate(self._leaves(m, platform, lane, reg, xs,
                                                                        q, q2))]
        # Stage 3 on: one adder level per stage; shorter trees are delayed to the longest.
        levels = max((max(1, len(leaves)) - 1).bit_length() for _, _, leaves, _ in trees)
        sums = [(lane * n + j, self._adder_tree(reg, leaves, limit, levels, f"sum_{lane}_{j}"))
                for lane, j, leaves, limit in trees]
        valid, qd, lastd = reg(v1, 1, "valid2"), q2, reg(last1, 1, "last2")
        for level in range(levels):
            valid = reg(valid, 1, f"valid{level + 3}")
            qd = reg(qd, range(passes), f"pass{level + 3}")
            lastd = reg(lastd, 1, f"last{level + 3}")
        m.d.sync += regs

        # ---- requantisation and pool, as PositionDrain feeds them, behind a credit FIFO
        # deep enough for the passes in flight from credit to pop (stages + 4), so a
        # requantiser that never stalls never runs out of credits --------------------------
        depth = levels + 6
        out = CreditedOutput(m, layer, lanes, passes, pool, self._acc_bits, depth,
                             wiring.flipped(self.o))
        for e, total in sums:
            m.d.comb += out.result.a[e].eq(total)
        m.d.comb += [out.result.slice.eq(qd), out.result.last.eq(lastd), out.valid.eq(valid),
                     out.claim.eq(cvalid & advance), advance.eq(out.ready)]

        m.d.comb += self.busy.eq((wy != 0) | (wx != 0) | tail | (lead != 0) | (lpy != 0)
                                 | (lpx != 0) | (at != 0) | full | issued | r_valid | cvalid
                                 | ~out.idle)
        m.d.comb += self.work.eq(advance & cvalid)
        return m
