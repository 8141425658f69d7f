"""RegisteredMultiplier: the ECP5 netlist (MULT18X18D instances) against the generic one, cycle by
cycle, under Icarus Verilog; the generic one against Python's products.

Amaranth's simulator cannot run an Instance, so both elaborations are written as Verilog and
run side by side in one test bench with a model of the MULT18X18D (mult18x18d.v beside this
file: Yosys's ECP5 library has only a black box), on random operands with the extremes of each
shape, the clock enable toggling and a reset in the middle (the DSPs' registers are not reset:
the two agree again once the pipeline has refilled).
"""

import gc
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth import Shape, signed, unsigned
from amaranth.back import verilog
from amaranth.sim import Simulator

from cosparse.boards.timing import part_platform
from cosparse.hw.multiplier import RegisteredMultiplier, is_ecp5

# A constructor that rejects its parameters leaves an object Amaranth reports as unused.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

MODEL = Path(__file__).with_name("mult18x18d.v")
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                  reason="apt-get install iverilog")

CASES = [
    (signed(18), signed(18), 2),      # one full DSP, both signed
    (unsigned(18), unsigned(18), 2),  # one full DSP, both unsigned
    (signed(8), signed(8), 2),        # the engines' value x weight
    (unsigned(5), signed(3), 3),      # mixed signs, narrow, three stages in the block
    (signed(18), unsigned(16), 3),    # the requantiser, 18-bit accumulators
    (signed(19), unsigned(16), 3),    # two DSPs: an unsigned 18-bit piece and a 1-bit top
    (signed(32), unsigned(16), 3),    # the widest accumulator
    (unsigned(16), signed(26), 3),    # the wide operand on b
    (unsigned(36), signed(9), 3),     # two full pieces, the top one unsigned
    (signed(8), signed(8), 2, -128),  # a constant weight: no b port, no b register
    (signed(8), signed(6), 2, 31),
    (unsigned(4), signed(24), 3, -5_000_000),  # a constant split across two DSPs
]


def _ids(case):
    a, b, stages, *constant = case
    return (f"{'s' if a.signed else 'u'}{a.width}x{'s' if b.signed else 'u'}{b.width}-{stages}"
            + "".join(f"={c}" for c in constant))


def _build(case):
    a, b, stages, *constant = case
    return RegisteredMultiplier(a, b, stages=stages, constant=constant[0] if constant else None)


def _draw(rng, shape: Shape, n: int) -> list:
    low, high = (-(1 << shape.width - 1), (1 << shape.width - 1) - 1) if shape.signed \
        else (0, (1 << shape.width) - 1)
    values = [int(v) for v in rng.integers(low, high, n, endpoint=True, dtype=np.int64)]
    extremes = [low, high, 0, low + 1, high - 1, -1 if shape.signed else 1]
    values[:len(extremes) * 3:3] = extremes
    return values


def _stimulus(case, n=400, seed=0):
    """Per cycle (rst, en, a, b): random operands with the extremes, en high 70% of the time,
    a reset in cycles 200 and 201."""
    a_shape, b_shape, _, *constant = case
    rng = np.random.default_rng(seed)
    a, b = _draw(rng, a_shape, n), constant * n or _draw(rng, b_shape, n)
    en = (rng.random(n) < 0.7).astype(int)
    rst = [int(i in (200, 201)) for i in range(n)]
    return list(zip(rst, en.tolist(), a, b))


def _expected(case, stimulus):
    """p after each cycle of a pipeline of ``stages`` enabled registers, cleared by reset."""
    stages = case[2]
    regs = [0] * stages  # operand product (taken together), then products
    out = []
    for rst, en, a, b in stimulus:
        if rst:
            regs = [0] * stages
        elif en:
            regs = [a * b] + regs[:-1]
        out.append(regs[-1])
    return out


def _refilled(stimulus, stages):
    """Per cycle: no reset yet, or ``stages`` enabled cycles since the last one."""
    refilled, since = [], None
    for rst, en, _, _ in stimulus:
        since = 0 if rst else None if since is None else since + en
        refilled.append(since is None or since >= stages)
    return refilled


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_generic_is_the_registered_product(case):
    """The default elaboration: Amaranth's simulator, against Python's products."""
    dut = _build(case)
    stimulus = [s for s in _stimulus(case) if not s[0]]  # no reset: the simulator drives none
    got = []

    async def bench(ctx):
        for _, en, a, b in stimulus:
            ctx.set(dut.a, a)
            if dut.constant is None:
                ctx.set(dut.b, b)
            ctx.set(dut.en, en)
            await ctx.tick()
            got.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == _expected(case, stimulus)


def _bench(width_a, width_b, width_p, n, b_port):
    return f"""`timescale 1ns/1ps
module bench;
    reg clk = 0, rst = 0, en = 0;
    reg [{width_a - 1}:0] a = 0;
    reg [{width_b - 1}:0] b = 0;
    wire [{width_p - 1}:0] p_generic, p_ecp5;
    reg [{2 + width_a + width_b - 1}:0] vectors [0:{n - 1}];
    integer i;
    generic g (.clk(clk), .rst(rst), .en(en), .a(a), {".b(b), " if b_port else ""}.p(p_generic));
    ecp5 e (.clk(clk), .rst(rst), .en(en), .a(a), {".b(b), " if b_port else ""}.p(p_ecp5));
    initial begin
        $readmemh("vectors.hex", vectors);
        for (i = 0; i < {n}; i = i + 1) begin
            {{rst, en, a, b}} = vectors[i];
            #1 clk = 1;
            #1 clk = 0;
            $display("%h %h", p_generic, p_ecp5);
        end
        $finish;
    end
endmodule
"""


@needs_icarus
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_ecp5_netlist_matches_the_generic_one(case, tmp_path):
    """Both elaborations in one Icarus bench, every cycle equal, and equal to the products."""
    a_shape, b_shape, stages, *_ = case
    platform = part_platform()
    assert is_ecp5(platform) and not is_ecp5(None)
    generic, ecp5 = _build(case), _build(case)
    (tmp_path / "generic.v").write_text(verilog.convert(generic, name="generic"))
    text = verilog.convert(ecp5, name="ecp5", platform=platform)
    pieces = -(-max(a_shape.width, b_shape.width) // 18)
    assert text.count("MULT18X18D #(") == pieces
    assert "MULT18X18D" not in (tmp_path / "generic.v").read_text()
    (tmp_path / "ecp5.v").write_text(text)
    stimulus = _stimulus(case)
    wp = len(generic.p)
    fields = []
    for rst, en, a, b in stimulus:
        word = (((rst << 1 | en) << a_shape.width | a & ((1 << a_shape.width) - 1))
                << b_shape.width) | b & ((1 << b_shape.width) - 1)
        fields.append(f"{word:x}")
    (tmp_path / "vectors.hex").write_text("\n".join(fields) + "\n")
    (tmp_path / "bench.v").write_text(_bench(a_shape.width, b_shape.width, wp, len(stimulus),
                                             generic.constant is None))
    subprocess.run(["iverilog", "-g2012", "-o", "bench.vvp", "bench.v", "generic.v", "ecp5.v",
                    str(MODEL)], cwd=tmp_path, check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", "bench.vvp"], cwd=tmp_path, check=True,
                         capture_output=True, text=True)
    lines = [line.split() for line in run.stdout.splitlines() if line and "$finish" not in line
             and not line.startswith("VCD")]
    assert len(lines) == len(stimulus), run.stdout[-2000:]
    mask = (1 << wp) - 1
    expected = [v & mask for v in _expected(case, stimulus)]
    generic_p = [int(g, 16) for g, _ in lines]
    ecp5_p = [int(e, 16) for _, e in lines]
    assert generic_p == expected
    # The DSPs' registers are not reset: after the reset, p is the generic one's again once
    # `stages` enabled cycles have refilled them, and in every cycle before the reset.
    refilled = _refilled(stimulus, stages)
    assert sum(refilled) > len(stimulus) - 20
    assert [e for e, r in zip(ecp5_p, refilled) if r] == \
        [g for g, r in zip(generic_p, refilled) if r]


def test_parameters_are_checked():
    with pytest.raises(TypeError, match="a_shape"):
        RegisteredMultiplier("wide", signed(8))
    with pytest.raises(ValueError, match="stages"):
        RegisteredMultiplier(signed(8), signed(8), stages=4)
    with pytest.raises(ValueError, match="at most one operand"):
        RegisteredMultiplier(signed(19), signed(19), stages=3)
    with pytest.raises(ValueError, match="needs stages=3"):
        RegisteredMultiplier(signed(24), unsigned(16), stages=2)
    with pytest.raises(ValueError, match="constant"):
        RegisteredMultiplier(signed(8), signed(8), constant=128)
    with pytest.raises(ValueError, match="constant"):
        RegisteredMultiplier(signed(8), unsigned(8), constant=-1)
    with pytest.raises(ValueError, match="one bit"):
        RegisteredMultiplier(unsigned(0), signed(8))
    gc.collect()  # the rejected units' "unused" warnings, while this module ignores them


def _pair_bench(inputs: dict, outputs: dict, n: int) -> str:
    """A bench driving ``generic`` and ``ecp5`` with the same inputs (``inputs``: name ->
    width, ``rst`` among them, read per cycle from vectors.hex, concatenated in order) and
    printing each cycle's outputs (``outputs``: name -> width) of both."""
    total = sum(inputs.values())
    regs = "\n".join(f"    reg [{w - 1}:0] {name} = 0;" for name, w in inputs.items())
    wires = "\n".join(f"    wire [{w - 1}:0] {name}_g, {name}_e;" for name, w in outputs.items())
    ports = ", ".join(f".{name}({name})" for name in inputs)
    shown = " ".join("%h" for _ in range(2 * len(outputs)))
    values = ", ".join([f"{name}_g" for name in outputs] + [f"{name}_e" for name in outputs])
    return f"""`timescale 1ns/1ps
module bench;
    reg clk = 0;
{regs}
{wires}
    reg [{total - 1}:0] vectors [0:{n - 1}];
    integer i;
    generic g (.clk(clk), {ports}, {", ".join(f".{o}({o}_g)" for o in outputs)});
    ecp5 e (.clk(clk), {ports}, {", ".join(f".{o}({o}_e)" for o in outputs)});
    initial begin
        $readmemh("vectors.hex", vectors);
        for (i = 0; i < {n}; i = i + 1) begin
            {{{", ".join(inputs)}}} = vectors[i];
            #1 clk = 1;
            #1 clk = 0;
            $display("{shown}", {values});
        end
        $finish;
    end
endmodule
"""


@needs_icarus
@pytest.mark.parametrize("acc_bits", [18, 24, 32])
def test_ecp5_requantiser_matches_the_generic_one(acc_bits, tmp_path):
    """A VectorRequantiser elaborated for the ECP5 (its products in MULT18X18Ds, two per
    product past 18 bits) and for no platform, fed the same random stream with random
    backpressure from a reset: the same handshakes and the same valid outputs, cycle by
    cycle."""
    from cosparse.hw.requant import VectorRequantiser

    rng = np.random.default_rng(acc_bits)
    channels, width, n = 5, 3, 300
    mult = rng.integers(0, 2**16, channels)
    mult[0] = 2**16 - 1
    shift = rng.integers(8, 40, channels)

    def build():
        return VectorRequantiser(channels, width, acc_bits, mult, shift)

    generic = build()
    (tmp_path / "generic.v").write_text(verilog.convert(generic, name="generic"))
    text = verilog.convert(build(), name="ecp5", platform=part_platform())
    assert text.count("MULT18X18D #(") == width * -(-acc_bits // 18)
    (tmp_path / "ecp5.v").write_text(text)
    layout = generic.i.payload.shape()
    inputs = {"rst": 1, "i__valid": 1, "i__payload": layout.size, "o__ready": 1}
    outputs = {"i__ready": 1, "o__valid": 1, "o__payload": len(generic.o.payload.as_value())}
    low, high = -(1 << acc_bits - 1), (1 << acc_bits - 1) - 1
    words = []
    for cycle in range(n):
        values = [int(v) for v in rng.integers(low, high, width, endpoint=True)]
        if cycle % 7 == 0:
            values[0] = [low, high][cycle // 7 % 2]
        payload = layout.const({"a": values, "slice": int(rng.integers(0, -(-channels // width))),
                                "last": int(rng.integers(0, 2))}).as_bits()
        valid, ready = int(rng.random() < 0.8), int(rng.random() < 0.7)
        rst = int(cycle < 2)  # from a reset, as a board starts: the ROM's output register too
        words.append(f"{(((rst << 1 | valid) << layout.size | payload) << 1) | ready:x}")
    (tmp_path / "vectors.hex").write_text("\n".join(words) + "\n")
    (tmp_path / "bench.v").write_text(_pair_bench(inputs, outputs, n))
    subprocess.run(["iverilog", "-g2012", "-o", "bench.vvp", "bench.v", "generic.v", "ecp5.v",
                    str(MODEL)], cwd=tmp_path, check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", "bench.vvp"], cwd=tmp_path, check=True,
                         capture_output=True, text=True)
    lines = [line.split() for line in run.stdout.splitlines() if len(line.split()) == 6]
    assert len(lines) == n, run.stdout[-2000:]
    # The handshakes in every cycle; the payload where it is valid (the DSPs' registers are
    # not reset: until the pipeline refills them an invalid payload may differ).
    assert [line[:2] for line in lines] == [line[3:5] for line in lines]
    shown = [(line[2], line[5]) for line in lines if line[1] == "1"]
    assert [g for g, _ in shown] == [e for _, e in shown]
    assert sum(line[1] == "1" and ready == "1" for line, ready in
               zip(lines, [f"{int(w, 16) & 1}" for w in words])) > 50  # results flowed
