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

- elaborated for no platform, or any platform but an ECP5, it is the
  plain ``*`` with its registers, exactly what the units wrote before
  (simulation and every other synthesis see the same netlist);
- elaborated for an ECP5 (an Amaranth platform whose ``family`` is
  ``"ecp5"``: amaranth's ``LatticePlatform`` for any LFE5 device, e.g.
  the ULX3S's, or :func:`cosparse.boards.timing.part_platform`), it is
  MULT18X18D instances with their input, pipeline and output registers
  clocked by the ``sync`` clock, enabled by ``en`` and reset with the
  ``sync`` reset (``RESETMODE`` "SYNC"), as the fabric registers are.

A MULT18X18D multiplies two 18-bit operands, each signed or unsigned by
its ``SIGNEDA`` / ``SIGNEDB`` pin (tied to the operand's signedness). An
operand wider than 18 bits is split into 18-bit pieces, each piece but
the top one unsigned, one DSP per piece, and the partial products, shifted
into place, are summed in the third register stage (``stages=3``), which
the fabric then holds: its adder is a carry chain of the product's width
between two registers, no multiplier delay in front of it.
"""

from amaranth import ClockSignal, Const, Instance, Module, ResetSignal, Shape, Signal, signed, \
    unsigned
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


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` of the operands taken ``stages`` enabled cycles before.

    Stage 1 registers ``a`` and ``b``, stage 2 the product; with
    ``stages=3`` a third register holds it again (the requantiser's
    DSP48E2 M and P registers; on an ECP5 the stage that sums the partial
    products of an operand wider than 18 bits). Every register advances
    only in a cycle with ``en`` high (tie it to 1 for a free-running
    pipeline) and is cleared by the ``sync`` reset. ``p`` is the full
    product, ``(a * b).shape()`` of Amaranth's arithmetic.

    Parameters
    ----------
    a_shape, b_shape : shape-castable
        The operands' shapes, signed or unsigned, at least one bit. At most
        one of them may be wider than 18 bits (a MULT18X18D's operand).
    stages : int
        2 or 3 register stages from operand to ``p``. An operand wider than
        18 bits needs 3: its partial products are summed in the third.

    Ports
    -----
    a : ``In(a_shape)``
    b : ``In(b_shape)``
    en : ``In(1)``
        Clock enable of every stage.
    p : ``Out((a * b).shape())``
    """

    def __init__(self, a_shape, b_shape, *, stages: int = 2):
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
        self.stages = stages
        product = (Signal(self.a_shape) * Signal(self.b_shape)).shape()
        super().__init__({"a": In(self.a_shape), "b": In(self.b_shape), "en": In(1),
                          "p": Out(product)})

    def elaborate(self, platform):
        m = Module()
        if is_ecp5(platform):
            self._ecp5(m)
            return m
        a = Signal(self.a_shape)
        b = Signal(self.b_shape)
        product = Signal.like(self.p)
        with m.If(self.en):
            m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b)]
            if self.stages == 3:
                m.d.sync += self.p.eq(product)
        if self.stages == 2:
            m.d.comb += self.p.eq(product)
        return m

    def _ecp5(self, m):
        """MULT18X18Ds with their registers on; an operand over 18 bits split across them."""
        wide, narrow = (self.a, self.b) if _fits(self.b_shape) else (self.b, self.a)
        partials = []
        for index, low in enumerate(range(0, len(wide), DSP_WIDTH)):
            piece = wide[low:low + DSP_WIDTH]  # unsigned, but the top piece of a signed operand
            if low + DSP_WIDTH >= len(wide) and wide.shape().signed:
                piece = piece.as_signed()
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
        ``pipeline`` (three stages in the block)."""
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
            i_CLK0=ClockSignal("sync"), i_CE0=self.en, i_RST0=ResetSignal("sync"),
            i_SOURCEA=0, i_SOURCEB=0, **ports)
