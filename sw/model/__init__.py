"""Float PyTorch model: complementary-sparse layers, k-WTA and the GSC network."""
from .complementary import (EMPTY, CompSparseConv2d, CompSparseLinear,
                            complementary_assignment, group_sizes)
from .gsc_net import LAYERS, STAGES, GSCNet, NetConfig
from .kwta import KWinners, KWinners2d, kwta, kwta_mask

__all__ = ["EMPTY", "CompSparseConv2d", "CompSparseLinear", "complementary_assignment",
           "group_sizes", "LAYERS", "STAGES", "GSCNet", "NetConfig", "KWinners", "KWinners2d",
           "kwta", "kwta_mask"]
