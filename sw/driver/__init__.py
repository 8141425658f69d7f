"""Host driver of the kernel: one API (:mod:`.api`) over the ``sim`` and ``xrt`` backends.

``protocol`` holds everything host and kernel must agree on (it imports
the register map the hardware is built from); ``backends`` carry the
buffers and register writes to a simulated or a real kernel; ``cli`` is
``cosparse run``. See docs/driver.md.
"""

from .api import BACKENDS, Driver, Inference, open_device

__all__ = ["BACKENDS", "Driver", "Inference", "open_device"]
