"""Data sets: the real Google Speech Commands layout and a synthetic stand-in.

- :mod:`.gsc`: list the train/validation/testing splits of a GSC root,
  12 classes (10 keywords, silence, unknown).
- :mod:`.dataset`: int8 features of a split, cached next to the data.
- :mod:`.synth`: make an offline GSC-layout data set with espeak-ng.
- :mod:`.noise`: the background-noise generators used by the synthesiser.
"""
from .gsc import CLASSES, Example, GSCDataset, LayoutError, list_split

__all__ = ["CLASSES", "Example", "GSCDataset", "LayoutError", "list_split"]
