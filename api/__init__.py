"""cosparse: an FPGA accelerator generator for complementary-sparse networks.

The whole flow from Python (docs/api.md), each step also a ``cosparse``
subcommand that calls the same function::

    import cosparse
    spec = cosparse.export(model, calibration, input_scale=1 / 127, classes=names)
    result = cosparse.golden(spec, x)            # bit-exact integer model
    report = cosparse.generate(spec, "out/")     # Verilog + summary (+ hw_config.json)
    sim = cosparse.simulate(spec, x)             # the Verilog, cycle-accurate, vs golden
    ran = cosparse.run(spec, x)                  # through the host driver (sim or a card)

Wherever a NetSpec is taken, a NetSpec folder is taken too; wherever a
hardware config is taken, an :class:`~cosparse.hw.config.HwConfig`, its
JSON form (a dict) or a JSON file is taken too.

This module is the package's ``__init__``: it imports nothing heavy, so
``import cosparse`` does not load PyTorch or Amaranth until a function
needs them. The subpackages (``cosparse.sw``, ``cosparse.hw``,
``cosparse.sim``, ``cosparse.boards``) are the repository's top-level
folders, mapped in setup.py.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["load", "save", "load_hw_config", "save_hw_config", "quantise_inputs", "export",
           "golden", "generate", "simulate", "run"]

#: Name of the hardware config written beside the Verilog by :func:`generate`.
HW_CONFIG_NAME = "hw_config.json"


def load(folder):
    """The :class:`~cosparse.sw.netspec.NetSpec` saved in ``folder`` (docs/netspec.md)."""
    from .sw import netspec
    return netspec.load(folder)


def save(spec, folder, *, metadata: dict | None = None) -> Path:
    """Write ``spec`` to ``folder`` (``netspec.json`` + ``arrays.npz``); returns the folder."""
    from .sw import netspec
    return netspec.save(spec, folder, metadata=metadata)


def _spec(spec):
    """A NetSpec given as one or as its folder."""
    from .sw.netspec import NetSpec
    if isinstance(spec, NetSpec):
        return spec
    if isinstance(spec, (str, Path)):
        return load(spec)
    raise TypeError(f"expected a NetSpec or a NetSpec folder, got {type(spec).__name__}")


def load_hw_config(path, spec, *, dense: bool = False):
    """The :class:`~cosparse.hw.config.HwConfig` in JSON file ``path``, validated for ``spec``.

    docs/hardware.md ("Hardware config") describes the file; ``dense``: it
    describes the dense baseline of ``spec``.
    """
    from .hw.config import load_hw_config as load_config
    return load_config(path, _spec(spec), dense=dense)


def save_hw_config(config, path, spec, *, dense: bool = False) -> Path:
    """Write ``config`` (an HwConfig for ``spec``) as JSON to ``path``; returns the path."""
    from .hw.config import save_hw_config as save_config
    return save_config(_hw_config(config, _spec(spec), dense), path, _spec(spec), dense=dense)


def _hw_config(config, spec, dense: bool):
    """An HwConfig from None (the default), an HwConfig, its JSON dict or a JSON file."""
    if config is None:
        return None
    from .hw.config import HwConfig, load_hw_config as load_config
    if isinstance(config, HwConfig):
        return config
    if isinstance(config, dict):
        return HwConfig.from_dict(config, spec, dense=dense)
    if isinstance(config, (str, Path)):
        return load_config(config, spec, dense=dense)
    raise TypeError(f"hw_config must be an HwConfig, a dict or a JSON file, "
                    f"got {type(config).__name__}")


def quantise_inputs(x, input_scale: float | None = None, qmin: int = -128, qmax: int = 127):
    """Float inputs -> ``(int8 inputs, input_scale)``: ``q = clip(round(x / scale), qmin, qmax)``.

    ``input_scale`` defaults to ``max |x| / qmax`` (or ``/ -qmin`` for
    negative inputs), so the calibration inputs just fit. The accelerator
    takes ``q``; the model is exported for inputs ``q * input_scale``.
    """
    import numpy as np
    x = np.asarray(x, np.float64)
    if not -128 <= qmin < qmax <= 127:
        raise ValueError(f"[qmin, qmax] = [{qmin}, {qmax}] must be an int8 range")
    if input_scale is None:
        peak = max(float(x.max(initial=0.0)) / qmax if qmax > 0 else 0.0,
                   float(-x.min(initial=0.0)) / -qmin if qmin < 0 else 0.0)
        input_scale = peak if peak > 0 else 1.0
    if not (isinstance(input_scale, (int, float)) and input_scale > 0):
        raise ValueError(f"input_scale must be a positive number, got {input_scale!r}")
    q = np.clip(np.floor(x / input_scale + 0.5), qmin, qmax).astype(np.int8)
    return q, float(input_scale)


def export(model, calibration, *, input_scale: float | None = None, classes=None,
           input_range: tuple | None = None, name: str | None = None, out=None,
           precision=None, output_scales=None, metadata: dict | None = None):
    """A trained PyTorch model -> :class:`~cosparse.sw.netspec.NetSpec` (saved to folder ``out``).

    ``model`` is an ``nn.Sequential``, or a module whose forward torch.fx
    traces into a straight chain, of the project's complementary-sparse
    Conv2d / Linear, k-WTA (local, global), MaxPool2d, BatchNorm (folded),
    ReLU and Flatten (docs/api.md); anything else is refused with a
    :class:`~cosparse.sw.export.ExportError` naming the module. Layer names
    are the modules' names, made safe. ``calibration`` is int8 inputs
    ``[B, C, H, W]`` as the accelerator will receive them (see
    :func:`quantise_inputs`); the model's input is ``calibration *
    input_scale``. It sets each layer's output scale (None when
    ``output_scales`` are given, e.g. by quantisation-aware training).
    ``classes`` names the outputs (default ``"0"``, ``"1"``...);
    ``input_range`` is ``(qmin, qmax)`` (default: ``(0, 127)`` for
    non-negative calibration, else ``(-128, 127)``); ``precision`` is a
    :class:`~cosparse.sw.export.Precision` (default: 16-bit first layer,
    4 fraction bits into local k-WTAs). The project's GSCNet needs none of
    these: its features' scale, range and class names are known.
    """
    from .sw.export import export_model, export_network, model_blocks
    from .sw.model import GSCNet
    if isinstance(model, GSCNet) and input_scale is None and classes is None \
            and input_range is None:
        spec, _ = export_model(model, calibration, out, name=name or "gsc", metadata=metadata,
                               output_scales=output_scales, precision=precision)
        return spec
    if input_scale is None:
        raise ValueError("input_scale is needed: the model's input is the int8 calibration "
                         "times input_scale (cosparse.quantise_inputs chooses one)")
    blocks = model_blocks(model)
    if classes is None:
        classes = [str(i) for i in range(blocks[-1].layer.out_features)]
    spec, _ = export_network(model, calibration, out, input_scale=input_scale, classes=classes,
                             input_range=input_range, name=name or "net", metadata=metadata,
                             output_scales=output_scales, precision=precision, blocks=blocks)
    return spec


def golden(spec, inputs, *, activations: bool = True):
    """The bit-exact integer model of ``spec`` on int8 ``inputs``.

    Returns a :class:`~cosparse.sw.golden.GoldenResult`: ``logits``,
    ``predictions``, per-layer work ``stats`` and, with ``activations``,
    every layer's output.
    """
    from .sw import golden as golden_model
    return golden_model.run(_spec(spec), inputs, keep_activations=activations)


def generate(spec, out, *, hw_config=None, dense: bool = False, emit_src: bool = False) -> dict:
    """Generate the accelerator of ``spec`` into folder ``out``; returns its summary.

    Writes ``out/cosparse_top.v``, ``out/summary.json`` (shapes, parallelism,
    memories and the analytical cycle model per engine) and
    ``out/hw_config.json`` (the hardware config used, defaults spelt out,
    ready to edit and pass back as ``hw_config``). ``dense``: the dense
    baseline. ``emit_src``: keep the ``(* src *)`` attributes naming the Python line
    of every cell (a third of the text). The summary's ``verilog`` and
    ``hw_config`` hold the paths. An ``out`` that is a file or runs through a symbolic link is refused
    (:class:`~cosparse.hw.output.OutputPathError`) before anything is built.
    """
    import json

    from .hw.output import check_out
    from .hw.config import HwConfig, save_hw_config as save_config
    from .hw.generate import generate as build, summary, unpack_dense, write_verilog
    from .sw import progress
    out = check_out(out)
    spec = _spec(spec)
    config = _hw_config(hw_config, spec, dense)
    if config is None:
        config = HwConfig.default_for(unpack_dense(spec) if dense else spec, dense=dense)
    with progress.stage("generate Verilog"):
        path = write_verilog(build(spec, config, dense=dense), out, emit_src=emit_src)
    with progress.stage("summary (analytical cycle model)"):
        report = summary(spec, config, dense=dense)
    report["verilog"] = str(path)
    report["hw_config"] = str(save_config(config, Path(out, HW_CONFIG_NAME), spec, dense=dense))
    Path(out, "summary.json").write_text(json.dumps(report, indent=2))
    return report


def simulate(spec, inputs, *, hw_config=None, simulator: str = "verilator",
             dense: bool = False, client=None, shards: int | None = None, **options) -> dict:
    """Simulate the generated Verilog of ``spec`` cycle-accurately on int8 ``inputs``.

    Builds it with Verilator or Icarus (``simulator``; cached by content),
    streams the inputs through it and compares every output with the golden
    model. Returns the report; ``report["summary"]["all_bit_exact"]`` is the
    verdict; ``report["hw_config"]`` is the hardware config simulated, written
    beside the run's report. ``options`` are :func:`cosparse.sim.run.simulate`'s
    (``stress``, ``seed``, ``waves``, ``progress``, ``log``, ``timeout``...).

    With a Dask ``client`` (``distributed.Client``), the inputs are cut into
    ``shards`` run on its workers, results in input order
    (:func:`cosparse.sim.distributed.simulate_sharded`, docs/distributed.md;
    ``options``: ``stress``, ``seed``, ``timeout``, ``log``).
    """
    from .hw.config import HwConfig, save_hw_config as save_config
    from .hw.generate import unpack_dense
    spec = _spec(spec)
    config = _hw_config(hw_config, spec, dense)
    if client is not None:
        from .sim.distributed import simulate_sharded
        report = simulate_sharded(client, spec, inputs, shards=shards, config=config,
                                  simulator=simulator, dense=dense, **options)
    elif shards is not None:
        raise ValueError("shards= cuts the inputs across a Dask cluster's workers; pass its "
                         "client= too (cosparse.sim.distributed.connect)")
    else:
        from .sim.run import simulate as run_simulation
        report = run_simulation(spec, inputs, simulator=simulator, dense=dense, config=config,
                                **options)
    if config is None:
        config = HwConfig.default_for(unpack_dense(spec) if dense else spec, dense=dense)
    report["hw_config"] = str(save_config(config, Path(report["report_path"]).parent
                                          / HW_CONFIG_NAME, spec, dense=dense))
    return report


def run(spec, inputs, *, backend: str = "sim", hw_config=None, throughput: int | None = None,
        **options) -> dict:
    """Run int8 ``inputs`` through the accelerator's kernel with the host driver.

    ``backend="sim"`` builds the Vitis RTL kernel with Verilator and drives
    its AXI ports (checking every result against the golden model);
    ``"xrt"`` runs an xclbin on a card (``xclbin=...``; docs/driver.md).
    ``throughput`` also runs that many inputs back to back and reports
    rates. Returns ``{"predictions", "logits", "cycles", "bit_exact",
    "host_seconds", "throughput"}``; ``options`` go to the backend.
    """
    import numpy as np

    from .sw.driver.api import open_device
    spec = _spec(spec)
    if throughput is not None and (isinstance(throughput, bool) or not isinstance(throughput, int)
                                   or throughput < 1):
        raise ValueError(f"throughput must be a positive number of inputs, got {throughput!r}")
    config = _hw_config(hw_config, spec, options.get("dense", False))
    if config is not None:
        if backend != "sim":
            raise ValueError("hw_config is for the sim backend: a card runs the xclbin it was "
                             "built with (cosparse build --hw-config)")
        options["config"] = config
    x = np.asarray(inputs)
    with open_device(backend, spec, **options) as driver:
        result = driver.infer(x)
        rates = driver.throughput(throughput, x) if throughput else None
    return {"predictions": result.predictions, "logits": result.logits, "cycles": result.cycles,
            "bit_exact": result.bit_exact, "host_seconds": result.seconds, "throughput": rates}
