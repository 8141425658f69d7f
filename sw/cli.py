"""The ``cosparse`` command: one subcommand per arrow of the data flow.

    cosparse data synth    make the offline GSC-layout data set (espeak-ng)
    cosparse train         train the float sparse-sparse (or dense) model
    cosparse export        quantise + pack a checkpoint into a NetSpec
    cosparse golden        run the bit-exact integer model of a NetSpec
    cosparse evaluate      float vs integer accuracy and agreement on a split
    cosparse generate      NetSpec -> Amaranth design -> Verilog + summary
    cosparse simulate      cycle-accurate simulation of the Verilog vs the golden model
    cosparse demo          generate + simulate the shipped default on the shipped samples
    cosparse run           inputs through the kernel with the host driver (sim or xrt)
    cosparse build         a board's build: Vitis plan (u250, zu3eg) or ECP5 bitstream (ulx3s)
    cosparse resources     UltraScale+ resources per module, per instance and at full chip
    cosparse explore       per-layer parallelism within a budget: Pareto front + hw config

Each subcommand's module registers its own options; this file only
assembles them and turns expected errors into one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import progress

__all__ = ["build_parser", "main"]

#: (module, attribute) of every subcommand's ``register_cli``, in help order.
_TOP_LEVEL = [
    ("cosparse.sw.train", "register_cli"),
    ("cosparse.sw.commands", "register_export"),
    ("cosparse.sw.commands", "register_golden"),
    ("cosparse.sw.commands", "register_evaluate"),
    ("cosparse.hw.cli", "register_cli"),
    ("cosparse.sim.cli", "register_cli"),
    ("cosparse.sw.driver.cli", "register_cli"),
    ("cosparse.boards.cli", "register_cli"),
    ("cosparse.boards.cli", "register_resources"),
    ("cosparse.hw.explore_cli", "register_cli"),
]


#: Modules that import torch (seconds): registered only when their command is the one run
#: or no command is named, so that `cosparse demo` starts, and reports, at once.
_HEAVY = {"cosparse.sw.train"}


def _register(subparsers, module, attribute):
    getattr(importlib.import_module(module), attribute)(subparsers)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``cosparse`` parser; given the ``command`` to be run, one good for that command only
    (the :data:`_HEAVY` modules are imported only when it is theirs)."""
    parser = argparse.ArgumentParser(
        prog="cosparse", description="FPGA accelerator generator for sparse-sparse networks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data = commands.add_parser("data", help="data sets: synthesise the offline GSC stand-in")
    data_commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    _register(data_commands, "cosparse.sw.data.synth", "register_cli")
    for module, attribute in _TOP_LEVEL:
        if command is None or module not in _HEAVY:
            _register(commands, module, attribute)
    if command is not None and command not in commands.choices:
        for module, attribute in _TOP_LEVEL:
            if module in _HEAVY:
                _register(commands, module, attribute)
    leaves = [c for name, c in commands.choices.items() if name != "data"]
    for sub in [*leaves, *data_commands.choices.values()]:
        try:
            sub.add_argument("--no-progress", dest="progress", action="store_false",
                                 help="no progress lines on stderr (default: shown when "
                                      "stderr is a terminal; COSPARSE_PROGRESS=1 forces them)")
        except argparse.ArgumentError:  # the subcommand has its own (simulate, demo)
            pass
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The command is the first word (the top level has no options but --help).
    command = argv[0] if argv and not argv[0].startswith("-") else None
    args = build_parser(command).parse_args(argv)
    try:
        progress.configure(None if getattr(args, "progress", True) else False)
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"cosparse {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cosparse {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
