"""The output end of an output-stationary conv engine: credit FIFO, requantiser, pool.

The window and gather engines (window.py, gather.py) both form whole
position sums in a data path that never stalls, one ``lanes x n`` slice
per (position, pass) in :class:`~.drain.PositionDrain`'s order. This is
what they share after it: a FIFO that a slice enters only with a
*credit* (a FIFO slot no slice in flight has claimed), so requantisation's
ready drives only the credit count, not every pipeline register; then
:class:`~..requant.VectorRequantiser` and :class:`~.pool.VectorPool`,
which emit one beat per (pooled) output position with all channels.
"""

from amaranth import Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered

from ..requant import VectorRequantiser
from ..skid import SkidBuffer
from .pool import VectorPool

__all__ = ["CreditedOutput"]


class CreditedOutput:
    """Build the credit FIFO, requantiser and pool of ``layer`` into ``m``, output to ``o``.

    Parameters
    ----------
    m : Module
        The engine's module; the FIFO, requantiser and pool become its submodules.
    layer : Conv2d
        The layer (its ``requant`` and ``out_channels``).
    lanes, passes, pool, acc_bits : int
        Slice width is ``lanes * layer.n`` sums of ``acc_bits``; ``passes`` slices per
        position; ``pool * pool`` positions per output.
    depth : int
        FIFO entries (and credits): at least the slices that can be in flight between a
        claim and the FIFO, so a requantiser that never stalls never runs out.
    o : the engine's output stream (flipped), fed by the pool.

    Attributes (drive or read them in the engine)
    ----------
    result : requantiser input payload; fill ``a``, ``slice`` and ``last``.
    valid : drive high in the cycle ``result`` holds a slice (its credit claimed earlier).
    claim : drive high in the cycle a slice enters the data path (takes a credit).
    ready : high while a credit is free (a slice may enter).
    idle : high when every credit is back (no slice in flight or queued).
    """

    def __init__(self, m, layer, lanes: int, passes: int, pool: int, acc_bits: int,
                 depth: int, o):
        rq = layer.requant
        width = lanes * layer.n
        m.submodules.requant = requant = VectorRequantiser(
            layer.out_channels, width, acc_bits, [int(v) for v in rq.multiplier],
            [int(v) for v in rq.shift], out_min=rq.out_min, out_max=rq.out_max,
            frac_bits=rq.frac_bits)
        m.submodules.pool = vpool = VectorPool(layer.out_channels, width, passes, pool * pool,
                                               frac_bits=rq.frac_bits)
        self.result = Signal.like(requant.i.payload)
        self.valid, self.claim, self.ready, self.idle = Signal(), Signal(), Signal(), Signal()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=len(self.result.as_value()),
                                                    depth=depth)
        credit = Signal(range(depth + 1), init=depth)
        popped = fifo.r_stream.valid & fifo.r_stream.ready
        m.d.sync += credit.eq(credit - self.claim + popped)
        m.d.comb += [self.ready.eq(credit != 0), self.idle.eq(credit == depth),
                     fifo.w_stream.valid.eq(self.valid), fifo.w_stream.payload.eq(self.result),
                     requant.i.valid.eq(fifo.r_stream.valid),
                     requant.i.payload.eq(fifo.r_stream.payload),
                     fifo.r_stream.ready.eq(requant.i.ready)]
        wiring.connect(m, requant.o, vpool.i)
        # A register slice to the engine's output: the next unit's i.ready (a local k-WTA's
        # ranking stall chain) would otherwise reach through the pool into the requantiser's
        # output slice and the pool's clock enables, the critical path of the scaled
        # network on the ECP5 once the products were in their DSPs (10.2 ns, 8.5 of it routing).
        m.submodules.out_slice = out_slice = SkidBuffer(vpool.o.payload.shape())
        wiring.connect(m, vpool.o, out_slice.i)
        wiring.connect(m, out_slice.o, o)
