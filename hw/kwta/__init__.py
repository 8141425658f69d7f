"""k-winners-take-all units: they turn an engine's dense int8 output into the
next layer's sparse stream, keeping only the winners (docs/netspec.md, kwta)."""

from .global_ import GlobalKWTA  # noqa: F401
from .local import LocalKWTA

__all__ = ["LocalKWTA", "GlobalKWTA"]
