"""Hardware configs from JSON (--hw-config / hw_config=): by layer name, validated, written
beside the Verilog, and built as asked."""

import json
import sys
from pathlib import Path

import pytest

import cosparse
from cosparse.hw.config import HwConfig, load_hw_config
from cosparse.sw import netspec
from cosparse.sw.cli import main
from cosparse.sw.netspec import Conv2d, random_inputs, random_netspec

sys.path.insert(0, str(Path(__file__).parent / "sim"))
from _sim_util import needs_verilator  # noqa: E402


def _conv_spec(seed=0):
    """A random NetSpec with a conv2d of kernel > 1 (so offsets can differ from K*K)."""
    for s in range(seed, seed + 50):
        spec = random_netspec(s, max_channels=4, max_size=8)
        conv = [layer for layer in spec.packed_layers if isinstance(layer, Conv2d)]
        if conv and conv[0].kernel > 1 and len(spec.packed_layers) >= 2:
            return spec
    raise AssertionError("no such random NetSpec")


def test_layers_by_name_override_the_defaults_and_round_trip(tmp_path):
    spec = _conv_spec()
    conv, last = spec.packed_layers[0], spec.packed_layers[-1]
    default = HwConfig.default_for(spec)
    config = HwConfig.from_dict({"fifo_depth": 2, "layers": {
        conv.name: {"lanes": 1, "offsets": 1, "fifo_depth": 0},
        last.name: {"lanes": 1}}}, spec)
    assert config.layers[0].lanes == 1 and config.layers[0].offsets == 1
    assert config.layers[0].acc_bits == default.layers[0].acc_bits
    assert config.layers[-1].lanes == 1
    assert config.layers[1:-1] == default.layers[1:-1]
    assert config.fifo_depth_of(0) == 0 and config.fifo_depth_of(len(config.layers) - 1) == 2
    path = cosparse.save_hw_config(config, tmp_path / "hw.json", spec)
    assert cosparse.load_hw_config(path, spec) == config
    # the older list form, in NetSpec order
    listed = {"layers": [{"lanes": c.lanes, "offsets": c.offsets} for c in default.layers]}
    assert HwConfig.from_dict(listed, spec) == default


@pytest.mark.parametrize("data, message", [
    ({"layers": {"nope": {"lanes": 1}}}, r"unknown layer\(s\) \['nope'\]: NetSpec .* has"),
    ({"layers": {"LAYER": {"colour": 1}}}, r"layer 'LAYER': unknown field\(s\) \['colour'\]"),
    ({"layers": {"LAYER": {"lanes": 0}}}, r"layer 'LAYER': lanes must be a positive integer"),
    ({"layers": {"LAYER": {"lanes": "2"}}}, r"layer 'LAYER': lanes must be an integer, got '2'"),
    ({"layers": {"LAYER": {"offsets": 7}}}, r"layer 'LAYER': offsets must divide the kernel"),
    ({"layers": {"LAYER": {"fifo_depth": -1}}}, r"layer 'LAYER': fifo_depth must be a non-neg"),
    ({"layers": {"LAYER": {"acc_bits": 4}}}, r"layer 'LAYER': acc_bits = 4 cannot hold"),
    ({"layers": {}, "fifo_depth": -2}, r"fifo_depth must be a non-negative integer"),
    ({"layers": {}, "speed": 3}, r"unknown field\(s\) \['speed'\]"),
    ({"layers": [{"lanes": 1}]}, r"1 layer entries, but NetSpec"),
])
def test_bad_configs_are_named(tmp_path, data, message):
    spec = _conv_spec()
    name = spec.packed_layers[0].name
    text = json.dumps(data).replace("LAYER", name)
    path = tmp_path / "hw.json"
    path.write_text(text)
    expected = f"hardware config {path}: " + message.replace("LAYER", name)
    with pytest.raises(ValueError, match=expected):
        load_hw_config(path, spec)


def test_generate_writes_the_config_beside_the_verilog_and_builds_it(tmp_path, capsys):
    spec = _conv_spec()
    folder = netspec.save(spec, tmp_path / "net")
    conv = spec.packed_layers[0]
    assert main(["generate", "--netspec", str(folder), "--out", str(tmp_path / "a")]) == 0
    written = json.loads((tmp_path / "a" / "hw_config.json").read_text())
    assert written == HwConfig.default_for(spec).to_dict(spec)
    # edit it: one lane and one offset for the conv, no FIFO in front of it
    written["layers"][conv.name].update(lanes=1, offsets=1, fifo_depth=0)
    (tmp_path / "hw.json").write_text(json.dumps(written))
    capsys.readouterr()
    assert main(["generate", "--netspec", str(folder), "--hw-config", str(tmp_path / "hw.json"),
                 "--out", str(tmp_path / "b"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layers"][0]["lanes"] == 1 and report["layers"][0]["multipliers"] == 1
    assert json.loads((tmp_path / "b" / "hw_config.json").read_text()) == written
    default_v = (tmp_path / "a" / "cosparse_top.v").read_text()
    edited_v = (tmp_path / "b" / "cosparse_top.v").read_text()
    assert f"fifo_{conv.name}_in" in default_v and f"fifo_{conv.name}_in" not in edited_v


def test_cli_errors_name_the_file_and_layer(tmp_path, capsys):
    spec = _conv_spec()
    folder = netspec.save(spec, tmp_path / "net")
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"layers": {"nope": {"lanes": 1}}}))
    for command in (["generate", "--out", str(tmp_path / "o")], ["simulate"], ["run"],
                    ["build", "--board", "u250", "--out", str(tmp_path / "o")]):
        assert main([*command, "--netspec", str(folder), "--hw-config", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"hardware config {path}: unknown layer(s) ['nope']" in err, (command, err)


def test_build_writes_the_config_beside_the_kernel(tmp_path):
    spec = _conv_spec()
    folder = netspec.save(spec, tmp_path / "net")
    conv = spec.packed_layers[0]
    (tmp_path / "hw.json").write_text(json.dumps({"layers": {conv.name: {"lanes": 1}}}))
    assert main(["build", "--board", "u250", "--netspec", str(folder), "--hw-config",
                 str(tmp_path / "hw.json"), "--out", str(tmp_path / "plan")]) == 0
    (written,) = (tmp_path / "plan").rglob("hw_config.json")
    assert json.loads(written.read_text())["layers"][conv.name]["lanes"] == 1
    assert (written.parent / "cosparse_kernel.v").is_file() or list(written.parent.glob("*.v"))


def test_run_refuses_a_config_for_a_card():
    spec = _conv_spec()
    with pytest.raises(ValueError, match="hw_config is for the sim backend"):
        cosparse.run(spec, random_inputs(spec, 1), backend="xrt",
                     hw_config={"layers": {}}, xclbin="none.xclbin")


@pytest.mark.slow
@needs_verilator
def test_a_non_default_config_simulates_bit_exact(tmp_path):
    spec = _conv_spec(3)
    conv = spec.packed_layers[0]
    config = {"fifo_depth": 1, "layers": {conv.name: {"lanes": 1, "offsets": conv.kernel,
                                                      "fifo_depth": 0}}}
    report = cosparse.simulate(spec, random_inputs(spec, 6, seed=2), hw_config=config,
                               stress=3, progress=False)
    assert report["summary"]["all_bit_exact"]
    assert json.loads(Path(report["hw_config"]).read_text())["layers"][conv.name]["lanes"] == 1


def test_a_drain_wider_than_the_global_kwta_input_is_rejected():
    """A width dividing n but above the layer's outputs would build a wide k-WTA that takes
    more values a beat than the tensor has; validation names the widths that fit."""
    import dataclasses
    from cosparse.hw.top import plan
    for seed in range(200):
        spec = random_netspec(seed, max_channels=6, max_size=8)
        for index, stage in enumerate(plan(spec)):
            layer = stage.layer
            if (stage.kwta is not None and stage.kwta.mode == "global"
                    and layer.n > layer.out_features):
                default = HwConfig.default_for(spec)
                layers = list(default.layers)
                layers[index] = dataclasses.replace(layers[index], width=layer.n)
                with pytest.raises(ValueError, match=rf"width = {layer.n} exceeds its "
                                                     rf"{layer.out_features} outputs"):
                    dataclasses.replace(default, layers=tuple(layers)).validate(spec)
                return
    pytest.skip("no random network with a packed layer wider than its outputs")
