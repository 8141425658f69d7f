"""The NetSpec: the versioned contract between exporter, golden model and hardware.

docs/netspec.md defines the on-disk format and every integer rule.
"""

from .io import ARRAYS_NAME, JSON_NAME, load, load_metadata, save
from .layers import (EMPTY_SLOT, FORMAT, KWTA, MAX_FRAC_BITS, MAX_SHIFT, MAX_WEIGHT_BITS,
                     MIN_WEIGHT_BITS, MULTIPLIER_BITS, VERSION, VERSIONS, Conv2d, InputSpec,
                     Linear, MaxPool2d, NetSpec, NetSpecError, Requant, weight_dtype)
from .random import random_inputs, random_netspec, random_packing, random_requant

__all__ = [
    "ARRAYS_NAME", "JSON_NAME", "load", "load_metadata", "save", "EMPTY_SLOT", "FORMAT", "KWTA",
    "MAX_FRAC_BITS", "MAX_SHIFT", "MAX_WEIGHT_BITS", "MIN_WEIGHT_BITS", "MULTIPLIER_BITS",
    "VERSION", "VERSIONS", "weight_dtype", "Conv2d", "InputSpec", "Linear", "MaxPool2d",
    "NetSpec", "NetSpecError", "Requant", "random_inputs", "random_netspec", "random_packing",
    "random_requant",
]
