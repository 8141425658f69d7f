"""k-winners-take-all units: they turn an engine's dense int8 output into the
next layer's sparse stream, keeping only the winners (docs/netspec.md, kwta).

With ``frac_bits`` (NetSpec version 2) the dense input is int8 with that many
extra fraction bits; winners are chosen on it and leave rounded to int8."""

from .global_ import GlobalKWTA  # noqa: F401
from .global_wide import GlobalWideKWTA
from .local import LocalKWTA

__all__ = ["LocalKWTA", "GlobalKWTA", "GlobalWideKWTA"]
