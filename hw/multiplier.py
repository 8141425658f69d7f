"""Registered multiplier: ``a * b`` with its operand and product registers, in fabric or in DSPs.

Every product the design forms sits between registers: the operands are
registered, the product is registered, and the requantiser registers it
once more. Written as Amaranth's ``*`` between those registers, the
synthesis tool decides what becomes of them. Vivado and Yosys's
``synth_xilinx`` pull the registers into the DSP48E2 (A/B, M, P); Yosys's
``synth_ecp5`` does not: it maps ``*`` onto a MULT18X18D with every
internal register off, so each product pays the multiplier's
combinational delay plus a route into the block and a route out of it
(one signed 18 x 18 product between fabric registers: 138.1 MHz on the
ECP5-85F, against 456.2 MHz with the block's own registers on;
bench/ecp5_multiplier.py). :class:`RegisteredMultiplier` is that
pipeline as one component, so the ECP5 build can put the registers where
they belong:

- elaborated for an ECP5 (:func:`is_ecp5`: an Amaranth platform whose
  ``family`` is ``"ecp5"``: amaranth's ``LatticePlatform`` for any LFE5
  device, e.g. the ULX3S's, or :func:`cosparse.boards.timing.part_platform`,
  what ``cosparse timing`` elaborates for), it is MULT18X18D instances with
  their input, pipeline and output registers clocked by the ``sync`` clock
  and enabled by ``en``;
- elaborated for no platform, or another one, it is the plain ``*`` with
  its registers: the reference the ECP5 netlist is checked against, cycle
  by cycle (tests/hw/test_multiplier.py, under Icarus Verilog with a
  model of the MULT18X18D), and the bench's inferred variant.

The units that multiply (the requantisers, :class:`~.engine.multiply.PackedMultiply`,
the window engine) instantiate it when :func:`is_ecp5` says so, and
otherwise write their registered products out as they always did: the
UltraScale+ resource flow (cosparse.boards.xilinx_synth) synthesises each
submodule on its own, so a multiplier submodule would change what it
counts (conv2's engine: +282 FDRE, registers no longer shared or packed
across the boundary), and every other build's netlist stays byte for byte
what it was.

The DSPs' reset pins are tied off: with the ``sync`` reset on them (the
harness's ``DCCA`` global net reaching the DSPs' ``RST0``) nextpnr failed
to route the reset into its global buffer on the scaled network
(``Failed to route arc 0.0 of net 'reset' ... G_CLKI_TDCC0``), and a
product needs no reset: every unit that multiplies qualifies its products
with a valid bit that the reset clears, and the pipeline refills the
DSP's registers in its first ``stages`` enabled cycles. Only those cycles
after a reset differ from the generic elaboration (whose registers the
reset clears).

A MULT18X18D multiplies two 18-bit operands, each signed or unsigned by
its ``SIGNEDA`` / ``SIGNEDB`` pin (tied to the operand's signedness). An
operand wider than 18 bits is split into 18-bit pieces, each piece but
the top one unsigned, one DSP per piece, and the partial products, shifted
into place, are summed in the third register stage (``stages=3``), which
the fabric then holds: its adder is a carry chain of the product's width
between two registers, no multiplier delay in front of it.
"""

from amaranth import ClockSignal, Const, Instance, Module, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DSP_WIDTH", "RegisteredMultiplier", "is_ecp5"]

#: Operand width of an ECP5 MULT18X18D.
DSP_WIDTH = 18


def is_ecp5(platform) -> bool:
    """Whether ``platform`` builds for an ECP5 (Amaranth's Lattice platforms name their
    ``family``; no platform, or another, is not)."""
    return getattr(platform, "family", None) == "ecp5"


def _fits(shape: Shape) -> bool:
    return shape.width <= DSP_WIDTH


def _piece(value, low: int):
    """Bits ``low ..`` of ``value``, at most 18 of them: unsigned, but the top piece of a signed
    value; a constant's piece is a constant."""
    width = min(DSP_WIDTH, len(value) - low)
    top_signed = low + width == len(value) and value.shape().signed
    if isinstance(value, Const):
        bits = value.value >> low
        return Const(bits, signed(width)) if top_signed \
            else Const(bits & ((1 << width) - 1), unsigned(width))
    piece = value[low:low + width]
    return piece.as_signed() if top_signed else piece


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` of the operands taken ``stages`` enabled cycles before.

    Stage 1 registers ``a`` and ``b``, stage 2 the product; with
    ``stages=3`` a third register holds it again (the requantiser's
    DSP48E2 M and P registers; on an ECP5 the stage that sums the partial
    products of an operand wider than 18 bits). Every register advances
    only in a cycle with ``en`` high (tie it to 1 for a free-running
    pipeline); the reset clears them in the generic elaboration only (on an
    ECP5 ``p`` is undefined until ``stages`` enabled cycles after a reset:
    see the module's notes). ``p`` is the full product, ``(a * b).shape()``
    of Amaranth's arithmetic. A ``constant`` ``b`` (a weight fixed in the
    design) has no port: the generic elaboration multiplies by it directly,
    as ``a_r * Const(...)`` (a register of it would only cost flip-flops),
    the ECP5 one loads it into B's input register, free in the block.

    Parameters
    ----------
    a_shape, b_shape : shape-castable
        The operands' shapes, signed or unsigned, at least one bit. At most
        one of them may be wider than 18 bits (a MULT18X18D's operand).
    stages : int
        2 or 3 register stages from operand to ``p``. An operand wider than
        18 bits needs 3: its partial products are summed in the third.
    constant : int or None
        ``b``'s value, fixed (an integer of ``b_shape``), or None: ``b`` is a port.

    Ports
    -----
    a : ``In(a_shape)``
    b : ``In(b_shape)``
        Absent with a ``constant``.
    en : ``In(1)``
        Clock enable of every stage.
    p : ``Out((a * b).shape())``
    """

    def __init__(self, a_shape, b_shape, *, stages: int = 2, constant: int | None = None):
        shapes = []
        for name, shape in (("a_shape", a_shape), ("b_shape", b_shape)):
            try:
                shape = Shape.cast(shape)
            except TypeError as error:
                raise TypeError(f"{name} must be shape-castable, got {shape!r}") from error
            if shape.width < 1:
                raise ValueError(f"{name} must be at least one bit wide, got {shape!r}")
            shapes.append(shape)
        if stages not in (2, 3) or isinstance(stages, bool):
            raise ValueError(f"stages must be 2 or 3, got {stages!r}")
        self.a_shape, self.b_shape = shapes
        if not (_fits(self.a_shape) or _fits(self.b_shape)):
            raise ValueError(f"at most one operand may be wider than {DSP_WIDTH} bits, got "
                             f"{self.a_shape!r} and {self.b_shape!r}")
        if stages == 2 and not (_fits(self.a_shape) and _fits(self.b_shape)):
            raise ValueError(f"an operand wider than {DSP_WIDTH} bits needs stages=3 (its partial "
                             f"products are summed in the third stage), got {self.a_shape!r} "
                             f"and {self.b_shape!r} with stages=2")
        if constant is not None:
            low, high = ((-1 << self.b_shape.width - 1, (1 << self.b_shape.width - 1) - 1)
                         if self.b_shape.signed else (0, (1 << self.b_shape.width) - 1))
            if not isinstance(constant, int) or isinstance(constant, bool) \
                    or not low <= constant <= high:
                raise ValueError(f"constant must be an integer of b_shape {self.b_shape!r} "
                                 f"([{low}, {high}]), got {constant!r}")
        self.stages, self.constant = stages, constant
        product = (Signal(self.a_shape) * Signal(self.b_shape)).shape()
        members = {"a": In(self.a_shape), "en": In(1), "p": Out(product)}
        if constant is None:
            members["b"] = In(self.b_shape)
        super().__init__(members)

    def _b(self):
        """The ``b`` operand as the block sees it: the port, or the constant."""
        return self.b if self.constant is None else Const(self.constant, self.b_shape)

    def elaborate(self, platform):
        m = Module()
        if is_ecp5(platform):
            self._ecp5(m)
            return m
        a = Signal(self.a_shape)
        if self.constant is None:
            b = Signal(self.b_shape)
            with m.If(self.en):
                m.d.sync += b.eq(self.b)
        else:
            b = self._b()
        product = Signal.like(self.p)
        with m.If(self.en):
            m.d.sync += [a.eq(self.a), product.eq(a * b)]
            if self.stages == 3:
                m.d.sync += self.p.eq(product)
        if self.stages == 2:
            m.d.comb += self.p.eq(product)
        return m

    def _ecp5(self, m):
        """MULT18X18Ds with their registers on; an operand over 18 bits split across them."""
        wide, narrow = (self.a, self._b()) if _fits(self.b_shape) else (self._b(), self.a)
        partials = []
        for index, low in enumerate(range(0, len(wide), DSP_WIDTH)):
            piece = _piece(wide, low)
            signed_product = piece.shape().signed or narrow.shape().signed
            product = Signal(signed(2 * DSP_WIDTH) if signed_product
                             else unsigned(2 * DSP_WIDTH), name=f"partial{index}")
            pipeline = self.stages == 3 and len(wide) <= DSP_WIDTH
            m.submodules[f"dsp{index}"] = self._mult18(m, piece, narrow, product, pipeline)
            partials.append(product << low)
        if len(partials) == 1:
            m.d.comb += self.p.eq(partials[0])
        else:
            with m.If(self.en):
                m.d.sync += self.p.eq(sum(partials[1:], partials[0]))

    def _mult18(self, m, a, b, p, pipeline: bool):
        """One MULT18X18D, ``p = a * b`` (each operand extended to 18 bits by its
        signedness, which its SIGNEDx pin tells the block), clocked by ``sync``, enabled by
        ``en``: input A/B and output registers on, the pipeline register too if
        ``pipeline`` (three stages in the block). A constant operand goes through its input
        register as well: nextpnr (0.11) does not support one input registered and the
        other not ("unsupported mixed input register modes") and times such a block as if
        neither were."""
        ports = {}
        for port, value in (("A", a), ("B", b)):
            extended = Signal(signed(DSP_WIDTH) if value.shape().signed else unsigned(DSP_WIDTH),
                              name=f"{port.lower()}_{p.name}")
            m.d.comb += extended.eq(value)
            ports.update({f"i_{port}{bit}": extended[bit] for bit in range(DSP_WIDTH)})
            ports[f"i_SIGNED{port}"] = Const(int(value.shape().signed), 1)
        ports.update({f"o_P{bit}": p[bit] for bit in range(2 * DSP_WIDTH)})
        return Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0",
            p_REG_PIPELINE_CLK="CLK0" if pipeline else "NONE", p_REG_OUTPUT_CLK="CLK0",
            p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_CLK0=ClockSignal("sync"), i_CE0=self.en, i_RST0=0,
            i_SOURCEA=0, i_SOURCEB=0, **ports)
