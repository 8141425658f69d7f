"""Where the shipped default model and sample clips live, with clear errors if absent.

The default is the sparse-sparse GSC network trained by this project's own
``cosparse train`` on the synthesised data set (docs/default-model.md
records the exact commands); it ships inside the package so the demo and
``cosparse golden`` work on a fresh checkout with no data and no training.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS", "DEFAULT_NETSPEC", "DEFAULT_CHECKPOINT", "SAMPLES", "require"]

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_NETSPEC = ASSETS / "default" / "netspec"
DEFAULT_CHECKPOINT = ASSETS / "default" / "sparse.pt"
SAMPLES = ASSETS / "samples"


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else a FileNotFoundError saying what is missing and how to make it."""
    if not Path(path).exists():
        raise FileNotFoundError(
            f"the shipped {what} is missing ({path}); this checkout is incomplete: restore it "
            f"with `git checkout -- {Path(path).relative_to(ASSETS.parent.parent)}` or pass "
            f"your own with the command's option")
    return Path(path)
