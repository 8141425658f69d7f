"""Where ``cosparse generate`` may write: an output folder checked before anything is built.

Kept apart from the generator (which imports Amaranth) so that the command
line and :func:`cosparse.generate` refuse a bad folder at once, at no cost.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["OUTPUTS", "OutputPathError", "check_out"]

#: The files ``cosparse generate`` writes into ``--out``.
OUTPUTS = ("cosparse_top.v", "summary.json", "hw_config.json")


class OutputPathError(ValueError):
    """``--out`` names something ``cosparse generate`` must not write into: an existing file,
    or a path through a symbolic link (the files would land wherever the link points)."""


def check_out(out) -> Path:
    """``out`` as a :class:`~pathlib.Path` after refusing what :class:`OutputPathError` names.

    Checked before generation (a minute for the default network), so a bad
    ``--out`` costs nothing. Every component of the path as given is
    checked, not the folders above the working directory: a link the user
    typed, or one planted inside the output folder, could send the Verilog
    anywhere, so the user is asked for the real path instead.
    """
    path = Path(out)
    for depth in range(1, len(path.parts) + 1):
        part = Path(*path.parts[:depth])
        if part.is_symlink():
            raise OutputPathError(f"--out {out}: {part} is a symbolic link; cosparse generate "
                                  f"does not write through links; give the real folder "
                                  f"({path.resolve()})")
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"--out {out}: exists and is not a folder; name a new or "
                              f"existing folder")
    for name in OUTPUTS:
        target = path / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise OutputPathError(f"--out {out}: {target} is a symbolic link or not a regular "
                                  f"file; remove it or choose another folder")
    return path
