"""Quantise, pack and export a trained float model to a NetSpec."""

from .export import Block, Precision, export_model, gsc_blocks, quantise_model
from .pack import PackingError, pack, unpack
from .quantise import fixed_point, fold_batch_norm, quantise_weights

__all__ = ["Block", "Precision", "export_model", "gsc_blocks", "quantise_model", "PackingError", "pack",
           "unpack", "fixed_point", "fold_batch_norm", "quantise_weights"]
