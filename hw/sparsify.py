"""From dense values to the sparse activation stream of hw/layouts.py.

Three pieces:

- :class:`Compactor` enforces the sparse stream's rules on a stream of
  candidate beats that already carry their coordinates: it drops zeros,
  moves ``last`` onto the final beat that survives, and turns an input
  with no survivor into the single value-0 beat. The k-WTA units reuse it,
  so the rules live in one place.
- :class:`PositionEmitter` turns one position's vector of channel values
  and a mask of the channels to send into sparse beats, one per cycle,
  channels ascending; the local k-WTA and the vector Sparsifier use it.
- :class:`Sparsifier` counts the coordinates of a dense stream (one value
  or one position per beat) and feeds a :class:`Compactor` or a
  :class:`PositionEmitter`.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import dense_layout, dense_vector_layout, sparse_layout
from .skid import SkidBuffer

__all__ = ["Compactor", "CoordinateCounter", "emitter_input_layout", "PositionEmitter", "Sparsifier"]

ORDERS = ("flat", "position_major")


def _check_flag(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


class Compactor(wiring.Component):
    """Drop the zero beats of a sparse stream and close each input properly.

    ``last`` on the input marks the end of an input, but the beat carrying
    it may be a zero that is dropped, so the unit holds back the latest
    surviving beat until it knows whether another survivor follows: one
    beat is held, one is offered on ``o``, and the unit still passes one
    beat per cycle (zeros cost their input cycle and nothing downstream).

    Parameters
    ----------
    shape : tuple
        ``(C, H, W)`` or ``(F,)``, for the coordinate fields.
    skip_zeros : bool
        When False every beat passes unchanged (the dense baseline).

    Ports
    -----
    i : ``In(stream.Signature(sparse_layout(shape)))``
        Candidate beats; ``value`` may be 0; ``last`` closes an input.
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        The non-zero beats in input order, ``last`` on the final one of
        each input; an input without any is sent as one beat of value 0,
        coordinates 0, ``last`` 1.
    """

    def __init__(self, shape: tuple, skip_zeros: bool = True):
        sparse_layout(shape)  # validates the shape
        _check_flag("skip_zeros", skip_zeros)
        self._shape, self._skip = shape, skip_zeros
        layout = sparse_layout(shape)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        # The input passes a register slice first, so i.ready is a flip-flop and the
        # zero test below starts from registers.
        m.submodules.slice = entry = SkidBuffer(sparse_layout(self._shape))
        wiring.connect(m, wiring.flipped(self.i), entry.i)
        beat = entry.o.payload
        held = Signal(sparse_layout(self._shape))
        held_valid = Signal()
        keep = (beat.value != 0) if self._skip else 1
        o_free = ~self.o.valid | self.o.ready
        closed = held_valid & held.last
        # The held beat moves on once its successor (or its input's end) is known.
        push = o_free & held_valid & (held.last | (entry.o.valid & keep))
        with m.If(closed):
            m.d.comb += entry.o.ready.eq(o_free)
        with m.Elif(held_valid):
            m.d.comb += entry.o.ready.eq(~keep | o_free)
        with m.Else():
            m.d.comb += entry.o.ready.eq(1)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(push):
            m.d.sync += [self.o.payload.eq(held), self.o.valid.eq(1), held_valid.eq(0)]

        with m.If(entry.o.valid & entry.o.ready):
            with m.If(keep):
                m.d.sync += [held.eq(beat), held_valid.eq(1)]
            with m.Elif(beat.last):
                with m.If(held_valid & ~held.last):
                    m.d.sync += held.last.eq(1)
                with m.Else():
                    # Nothing of this input survived: the empty-input beat.
                    m.d.sync += [held.eq(0), held.last.eq(1), held_valid.eq(1)]
        return m


class CoordinateCounter(wiring.Component):
    """Coordinates of successive elements of a tensor walked in a fixed order.

    ``order="flat"`` walks ``x`` fastest, then ``y``, then ``c`` (NetSpec's
    flat order); ``"position_major"`` walks ``c`` fastest, then ``x``, then
    ``y``. A 1-D shape has the single ``index`` coordinate. The counters
    wrap at their extents and return to 0 on ``restart``.

    Ports
    -----
    coord : ``Out(sparse_layout(shape))``
        The current coordinates (``value`` and ``last`` fields unused, 0).
    advance : ``In(1)``
        Step to the next element at the next clock edge.
    restart : ``In(1)``
        Return to the first element at the next clock edge (wins over ``advance``).
    """

    def __init__(self, shape: tuple, order: str = "position_major"):
        sparse_layout(shape)  # validates the shape
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self._shape, self._order = shape, order
        super().__init__({"coord": Out(sparse_layout(shape)), "advance": In(1), "restart": In(1)})

    def elaborate(self, platform):
        m = Module()
        if len(self._shape) == 1:
            names = ["index"]
        else:
            names = ["x", "y", "c"] if self._order == "flat" else ["c", "x", "y"]
        extents = dict(zip(("c", "y", "x"), self._shape)) if len(self._shape) == 3 \
            else {"index": self._shape[0]}
        counters = {name: Signal(range(extents[name]), name=f"count_{name}") for name in names}
        for name, counter in counters.items():
            m.d.comb += self.coord[name].eq(counter)
        with m.If(self.restart):
            m.d.sync += [counter.eq(0) for counter in counters.values()]
        with m.Elif(self.advance):
            carry = 1
            for name in names:
                counter, wrap = counters[name], counters[name] == extents[name] - 1
                with m.If(carry):
                    m.d.sync += counter.eq(Mux(wrap, 0, counter + 1))
                carry = carry & wrap
        return m


def emitter_input_layout(channels: int) -> data.StructLayout:
    """One position: its ``values``, the channels to send (``mask`` bit ``c``) and ``last``."""
    return data.StructLayout({"values": data.ArrayLayout(signed(8), channels),
                              "mask": unsigned(channels), "last": unsigned(1)})


_GROUP = 8  # channels per group in the shallow priority logic below


def _groups(bits):
    return [bits[g:g + _GROUP] for g in range(0, len(bits), _GROUP)]


def lowest_set(bits):
    """One-hot of the lowest set bit of ``bits`` (a list of 1-bit values; all 0 if none).

    Two-level: within a group of 8 and across the groups' ORs, so the depth
    is that of two small ORs, not a chain through every bit.
    """
    groups = _groups(bits)
    group_any = [Cat(*g).any() for g in groups]
    result = []
    for index, group in enumerate(groups):
        before = Cat(*group_any[:index]).any() if index else Const(0, 1)
        for c, bit in enumerate(group):
            earlier = Cat(*group[:c]).any() if c else Const(0, 1)
            result.append(bit & ~earlier & ~before)
    return result


def at_most_one(bits):
    """1 when at most one of ``bits`` is set (groups of 8, then across groups)."""
    groups = _groups(bits)
    group_any = [Cat(*g).any() for g in groups]
    group_many = [Cat(*[a & b for i, a in enumerate(g) for b in g[i + 1:]]).any()
                  if len(g) > 1 else Const(0, 1) for g in groups]
    across = Cat(*[a & b for i, a in enumerate(group_any) for b in group_any[i + 1:]]).any() \
        if len(groups) > 1 else Const(0, 1)
    return ~Cat(*group_many).any() & ~across


class PositionEmitter(wiring.Component):
    """Send the masked channels of each position as sparse beats, channels ascending.

    A position is held while its beats go out, one per cycle: the lowest
    channel still in the mask is sent and cleared. A position with an empty
    mask costs one cycle (a value-0 beat the :class:`Compactor` drops unless
    it must carry an input's ``last``). Positions are numbered in raster
    order from 0 and the numbering restarts after ``last``.

    The channel to send next is kept one-hot in a register, found one beat
    ahead from the rest of the mask (:func:`lowest_set`, two small OR levels
    instead of a chain through every channel), together with whether it is
    the position's last (:func:`at_most_one`); the beat's value is then an
    AND-OR of the held values with that register and its channel an OR
    encoding, and the Compactor's registered ``i.ready`` is the only
    handshake the emitter sees, so no path crosses from one to the other.

    Parameters
    ----------
    shape : (C, H, W)
    skip_zeros : bool
        Passed to the Compactor: False keeps every beat sent (value-0 ones too).

    Ports
    -----
    i : ``In(stream.Signature(emitter_input_layout(C)))``
        ``i.ready`` depends on registers only.
    o : ``Out(stream.Signature(sparse_layout(shape)))``

    Cycles per position: ``max(1, popcount(mask))``.
    """

    def __init__(self, shape: tuple, skip_zeros: bool = True):
        if not isinstance(shape, tuple) or len(shape) != 3:
            raise TypeError(f"shape must be a tuple (C, H, W), got {shape!r}")
        sparse_layout(shape)  # validates the extents
        _check_flag("skip_zeros", skip_zeros)
        self._shape, self._skip = shape, skip_zeros
        super().__init__({"i": In(stream.Signature(emitter_input_layout(shape[0]))),
                          "o": Out(stream.Signature(sparse_layout(shape)))})

    def elaborate(self, platform):
        m = Module()
        channels, height, width = self._shape
        m.submodules.compactor = compactor = Compactor(self._shape, self._skip)
        wiring.connect(m, compactor.o, wiring.flipped(self.o))
        m.submodules.counter = counter = CoordinateCounter((1, height, width), "flat")

        values = Signal(data.ArrayLayout(signed(8), channels))
        last = Signal()
        held_y, held_x = Signal.like(counter.coord.y), Signal.like(counter.coord.x)
        busy = Signal()
        current = Signal(channels)  # one-hot: the channel sent next (0: an empty position)
        rest = Signal(channels)  # the channels after it
        final = Signal()  # current is the position's last beat

        beat = compactor.i.payload
        picked = [Mux(current[c], values[c], 0) for c in range(channels)]
        value = Signal(8)
        m.d.comb += value.eq(_or_tree(picked))
        index = [_or_tree([current[c] for c in range(channels) if c >> b & 1])
                 for b in range(len(beat.c))]
        m.d.comb += [compactor.i.valid.eq(busy), beat.value.eq(value), beat.c.eq(Cat(*index)),
                     beat.y.eq(held_y), beat.x.eq(held_x), beat.last.eq(last & final)]

        emitted = busy & compactor.i.ready
        m.d.comb += self.i.ready.eq(~busy | (compactor.i.ready & final))
        taken = self.i.valid & self.i.ready
        m.d.comb += [counter.advance.eq(taken), counter.restart.eq(taken & self.i.payload.last)]
        with m.If(taken):
            mask = [self.i.payload.mask[c] for c in range(channels)]
            first = lowest_set(mask)
            m.d.sync += [values.eq(self.i.payload.values), last.eq(self.i.payload.last),
                         busy.eq(1), held_y.eq(counter.coord.y), held_x.eq(counter.coord.x),
                         current.eq(Cat(*first)),
                         rest.eq(self.i.payload.mask & ~Cat(*first)),
                         final.eq(at_most_one(mask))]
        with m.Elif(emitted):
            following = [rest[c] for c in range(channels)]
            after = lowest_set(following)
            m.d.sync += [current.eq(Cat(*after)), rest.eq(rest & ~Cat(*after)),
                         final.eq(at_most_one(following))]
            with m.If(final):
                m.d.sync += busy.eq(0)
        return m


def _or_tree(terms):
    """OR of ``terms`` as a balanced tree (Const 0 for none)."""
    terms = list(terms)
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class Sparsifier(wiring.Component):
    """Turn a dense int8 stream into the sparse stream of its non-zero values.

    Each input's beats are numbered from 0 in the stream's order and get
    the coordinates of that element; ``last`` alone delimits inputs (the
    count restarts after it). An input must have exactly ``prod(shape)``
    beats: there is no check in hardware; with fewer, the elements simply
    get the first coordinates, and with more, the coordinates wrap.

    One beat per cycle in, whatever the density; one per non-zero (at
    least one per input) out. With ``vector=True`` a beat is a whole
    position (``dense_vector_layout(C)``, a conv engine's output) and its
    non-zero channels go out one per cycle, ascending, through a
    :class:`PositionEmitter`: ``max(1, non-zeros)`` cycles per position.

    Parameters
    ----------
    shape : tuple
        ``(F,)`` or ``(C, H, W)``.
    skip_zeros : bool
        When False every value is passed on (the dense baseline).
    order : str
        Order of a 3-D input: ``"position_major"`` (the engines' dense
        output, hw/layouts.py; the default) or ``"flat"`` (NetSpec
        ``(c, y, x)`` order: the network input). A 1-D input is flat.
    vector : bool
        Take one position per beat (3-D shape, position-major only).

    Ports
    -----
    i : ``In(stream.Signature(dense_layout()))``
        ``value`` (signed(8)) and ``last``; ``dense_vector_layout(C)`` when ``vector``.
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        ``value``, coordinates (``c``, ``y``, ``x`` or ``index``) and ``last``,
        in input order.
    """

    def __init__(self, shape: tuple, skip_zeros: bool = True, order: str = "position_major",
                 vector: bool = False):
        sparse_layout(shape)  # validates the shape
        _check_flag("skip_zeros", skip_zeros)
        _check_flag("vector", vector)
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        if vector and (len(shape) != 3 or order != "position_major"):
            raise ValueError(f"a vector Sparsifier takes a (C, H, W) shape in position_major "
                             f"order, got {shape!r} in {order!r}")
        self._shape, self._skip, self._order, self._vector = shape, skip_zeros, order, vector
        layout = dense_vector_layout(shape[0]) if vector else dense_layout()
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(sparse_layout(shape)))})

    def elaborate(self, platform):
        m = Module()
        if self._vector:
            # The mask is computed into a register slice, so the emitter starts from registers.
            channels = self._shape[0]
            m.submodules.slice = entry = SkidBuffer(emitter_input_layout(channels))
            m.submodules.emitter = emitter = PositionEmitter(self._shape, self._skip)
            values = self.i.payload.values
            mask = [values[c] != 0 for c in range(channels)] if self._skip else [Const(1, 1)] * channels
            m.d.comb += [entry.i.valid.eq(self.i.valid), self.i.ready.eq(entry.i.ready),
                         entry.i.payload.values.eq(values),
                         entry.i.payload.mask.eq(Cat(*mask)),
                         entry.i.payload.last.eq(self.i.payload.last)]
            wiring.connect(m, entry.o, emitter.i)
            wiring.connect(m, emitter.o, wiring.flipped(self.o))
            return m
        m.submodules.counter = counter = CoordinateCounter(self._shape, self._order)
        m.submodules.compactor = compactor = Compactor(self._shape, self._skip)
        taken = self.i.valid & self.i.ready
        m.d.comb += [
            compactor.i.valid.eq(self.i.valid),
            compactor.i.payload.eq(counter.coord),
            compactor.i.payload.value.eq(self.i.payload.value),
            compactor.i.payload.last.eq(self.i.payload.last),
            self.i.ready.eq(compactor.i.ready),
            counter.advance.eq(taken),
            counter.restart.eq(taken & self.i.payload.last),
        ]
        wiring.connect(m, compactor.o, wiring.flipped(self.o))
        return m
