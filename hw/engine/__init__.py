"""The packed-layer engine: scatter, packed-kernel multiply, routed accumulators, drain.

One engine computes one conv2d or linear layer of a NetSpec on a stream of
non-zero activations, so its cycles follow the activation density:

    sparse in -> scatter (conv.py / linear.py) -> packed multiply (multiply.py)
              -> routing + accumulators (router.py) -> drain: bias, requant, pool
              (drain.py) -> dense out

:class:`~.pipeline.PackedEngine` assembles these parts. A conv layer on a
dense one-channel input may instead be a :class:`~.window.WindowConvEngine`
(window.py): output-stationary, adder trees, no accumulator memory; a conv
layer after a local k-WTA a :class:`~.gather.GatherConvEngine` (gather.py),
output-stationary over the k winners of each input position.
"""

from .conv import ConvEngine, ConvScatter
from .gather import GatherConvEngine
from .linear import LinearEngine, LinearScatter
from .window import WindowConvEngine

__all__ = ["ConvEngine", "ConvScatter", "GatherConvEngine", "LinearEngine", "LinearScatter",
           "WindowConvEngine"]
