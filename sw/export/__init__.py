"""Quantise, pack and export a trained float model to a NetSpec."""

from .export import (Block, Precision, export_model, export_network, float_inputs, gsc_blocks,
                     model_blocks, quantise_model)
from .pack import PackingError, pack, unpack
from .quantise import fixed_point, fold_batch_norm, quantise_weights

from .sequential import ExportError

__all__ = ["Block", "Precision", "export_model", "export_network", "float_inputs", "gsc_blocks",
           "model_blocks", "quantise_model", "ExportError", "PackingError", "pack", "unpack",
           "fixed_point", "fold_batch_norm", "quantise_weights"]
