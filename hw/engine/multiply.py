"""Packed-kernel multiply: one weight-word read, ``lanes`` products per work item."""

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .weights import kernel_id_bits, weight_words, word_layout

__all__ = ["item_layout", "product_layout", "PackedMultiply"]


def _bits(extent: int) -> int:
    return max(1, ceil_log2(extent))


def item_layout(fan_in: int, passes: int, positions: int) -> data.StructLayout:
    """One unit of work: activation ``value`` at fan-in index ``f``, pass ``q``, output
    position ``p``; ``last`` marks the final item of an input."""
    return data.StructLayout({"value": signed(8), "f": unsigned(_bits(fan_in)),
                              "q": unsigned(_bits(passes)), "p": unsigned(_bits(positions)),
                              "last": unsigned(1)})


def product_layout(n: int, lanes: int, passes: int, positions: int) -> data.StructLayout:
    """Products of one item: per lane the int16 product and its kernel id, plus where
    they go (pass ``q``, position ``p``)."""
    return data.StructLayout({
        "product": data.ArrayLayout(signed(16), lanes),
        "kernel": data.ArrayLayout(unsigned(kernel_id_bits(n)), lanes),
        "q": unsigned(_bits(passes)), "p": unsigned(_bits(positions)), "last": unsigned(1)})


class PackedMultiply(wiring.Component):
    """Multiply an activation by the packed weights of ``lanes`` groups at once.

    Complementary packing puts the non-overlapping kernels of a group into
    one packed kernel, so a single product per group and fan-in index does
    the work of ``n`` kernels; the kernel id travels with the product so the
    router can send it to the right accumulator.

    Both streams are ``always_ready``: the pipeline behind never stalls
    (accumulator writes always succeed), so items flow one per cycle with a
    fixed latency of two cycles.

    Parameters
    ----------
    layer : Conv2d or Linear
        NetSpec layer whose packed weights fill the weight memory.
    lanes : int
        Multipliers; ``ceil(groups / lanes)`` passes cover every group.
    positions : int
        Output positions of the layer (1 for linear).
    """

    def __init__(self, layer, lanes: int, positions: int):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {lanes!r}")
        if not isinstance(positions, int) or positions < 1:
            raise ValueError(f"positions must be a positive integer, got {positions!r}")
        self._layer = layer
        self._lanes = lanes
        self._passes = -(-layer.groups // lanes)
        super().__init__({
            "i": In(stream.Signature(item_layout(layer.fan_in, self._passes, positions),
                                     always_ready=True)),
            "o": Out(stream.Signature(product_layout(layer.n, lanes, self._passes, positions),
                                      always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        words = weight_words(self._layer, self._lanes)
        layout = word_layout(self._layer.n, self._lanes)
        m.submodules.weights = rom = Memory(shape=unsigned(layout.size), depth=len(words),
                                            init=words)
        read = rom.read_port()
        word = layout(read.data)
        m.d.comb += read.addr.eq(self.i.payload.f * self._passes + self.i.payload.q)

        # Stage 1: the word is read; the item's routing fields wait beside it.
        s1_valid = Signal()
        s1 = Signal(self.i.payload.shape())
        m.d.sync += [s1_valid.eq(self.i.valid), s1.eq(self.i.payload)]

        # Stage 2: registered products.
        m.d.sync += self.o.valid.eq(s1_valid)
        m.d.sync += [self.o.payload.q.eq(s1.q), self.o.payload.p.eq(s1.p),
                     self.o.payload.last.eq(s1.last)]
        for lane in range(self._lanes):
            m.d.sync += [self.o.payload.product[lane].eq(s1.value * word[lane].weight),
                         self.o.payload.kernel[lane].eq(word[lane].kernel)]
        return m
