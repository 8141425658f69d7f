"""The packed-layer engine: scatter, packed-kernel multiply, routed accumulators, drain.

One engine computes one conv2d or linear layer of a NetSpec on a stream of
non-zero activations, so its cycles follow the activation density:

    sparse in -> scatter (conv.py / linear.py) -> packed multiply (multiply.py)
              -> routing + accumulators (router.py) -> drain: bias, requant, pool
              (drain.py) -> dense out

:class:`~.pipeline.PackedEngine` assembles these parts.
"""

from .conv import ConvEngine, ConvScatter
from .linear import LinearEngine, LinearScatter

__all__ = ["ConvEngine", "ConvScatter", "LinearEngine", "LinearScatter"]
