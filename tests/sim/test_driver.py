"""The driver's sim backend end to end: the Verilated kernel through its AXI ports, vs golden.

One small random network is built once (about 40 s with Verilator on 2
cores; ``driver_cache`` in tests/conftest.py), shared by the pytest-xdist
workers and the xrt backend's tests; every test then drives that
kernel through the protocol's register writes and buffers, with
cocotbext-axi's AxiLiteMaster and AxiRam, and checks each result bit for
bit against the golden model.
"""

import json

import numpy as np
import pytest

from cosparse.hw.generate import summary
from cosparse.sw import golden
from cosparse.sw.driver import open_device, protocol
from cosparse.sw.netspec import random_inputs

SEED = 1  # backpressure seed


@pytest.fixture(scope="module")
def spec(driver_spec):
    return driver_spec


@pytest.fixture(scope="module")
def cache(driver_cache):
    """The kernel of ``spec``, built once per session (tests/conftest.py)."""
    return driver_cache


@pytest.fixture(scope="module")
def driver(spec, cache):
    with open_device("sim", spec, cache=cache, backpressure=0.3, seed=SEED) as device:
        yield device


def test_infer_is_bit_exact_under_memory_backpressure(driver, spec):
    x = random_inputs(spec, 12, seed=3)
    result = driver.infer(x)
    expected = golden.run(spec, x, keep_activations=False)
    assert result.bit_exact
    assert np.array_equal(result.logits, expected.logits)
    assert np.array_equal(result.predictions, expected.predictions)
    assert result.cycles > 0 and set(result.seconds) == {"pack", "transfer", "kernel", "unpack"}


def test_trailer_carries_the_netspec_fingerprint(driver, spec):
    """The kernel writes its NetSpec's fingerprint; a driver given another NetSpec refuses."""
    import dataclasses
    from cosparse.hw.kernel.fingerprint import netspec_fingerprint
    x = random_inputs(spec, 2, seed=8)
    out, = driver.backend.run([(protocol.pack_features(spec, x), 2)])
    trailer = protocol.decode_trailer(driver.layout, out.results, 2)
    assert trailer.fingerprint == netspec_fingerprint(spec) and trailer.count == 2
    other = dataclasses.replace(spec, name=spec.name + "-other")
    with pytest.raises(protocol.NetSpecMismatch, match="generated from another NetSpec"):
        protocol.check_fingerprint(other, trailer)


def test_kernel_recovers_from_reset_in_mid_run(driver, spec):
    """Runs cut by ap_rst_n at several points, each followed by a run that must be exact."""
    x = random_inputs(spec, 6, seed=4)
    buffer = protocol.pack_features(spec, x)
    cuts = [50, 250, 700]
    runs, reset_after = [], []
    for cut in cuts:
        runs += [(buffer, len(x)), (buffer, len(x))]
        reset_after += [cut, None]
    outputs = driver.backend.run(runs, reset_after=reset_after)
    expected = golden.run(spec, x, keep_activations=False)
    assert outputs[0::2] == [None] * len(cuts)
    for out in outputs[1::2]:
        logits, predictions = protocol.unpack_results(driver.layout, out.results, len(x))
        trailer = protocol.decode_trailer(driver.layout, out.results, len(x))
        assert not trailer.error and trailer.cycles > 0
        assert np.array_equal(logits, expected.logits)
        assert np.array_equal(predictions, expected.predictions)


def test_throughput_follows_the_network_interval(spec, cache):
    """Without stalls the kernel adds little to the network's initiation interval."""
    with open_device("sim", spec, cache=cache) as device:
        report = device.throughput(10, random_inputs(spec, 5, seed=5))
    interval = summary(spec)["initiation_interval"]
    assert report["bit_exact"] and report["inputs"] == 10 and report["clock_assumed"]
    assert report["clock_hz"] == 250e6
    assert report["latency_cycles"] > report["marginal_cycles_per_input"] > 0
    assert abs(report["marginal_cycles_per_input"] - interval) <= 0.1 * interval + 8
    assert report["inputs_per_second"] == pytest.approx(10 * 250e6 / report["kernel_cycles"])
    assert report["host_inputs_per_second"] > 0


def test_stream_yields_every_clip_in_order(driver, spec):
    x = random_inputs(spec, 5, seed=6)
    seen = list(driver.stream(list(x), batch=3))  # two runs: 3 clips, then 2
    expected = golden.run(spec, x, keep_activations=False)
    assert [p for _, p, _ in seen] == expected.predictions.tolist()
    assert all(np.array_equal(c, xi) for (c, _, _), xi in zip(seen, x))


def test_cli_run_json(spec, cache, tmp_path, capsys, monkeypatch):
    from cosparse.sw.cli import main
    from cosparse.sw.driver.cli import format_throughput
    from cosparse.sw.netspec import save
    save(spec, tmp_path / "net")
    np.save(tmp_path / "x.npy", random_inputs(spec, 3, seed=7))
    monkeypatch.setenv("COSPARSE_CACHE", str(cache))
    args = ["run", "--netspec", str(tmp_path / "net"), "--features", str(tmp_path / "x.npy"),
            "--throughput", "4"]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bit_exact"] and len(report["inputs"]) == 3
    assert report["throughput"]["inputs"] == 4 and report["throughput"]["bit_exact"]
    text = "\n".join(format_throughput(report["throughput"]))
    assert "at 250 MHz assumed" in text and "bit-exact with the golden model: yes" in text


def test_cli_throughput_sim(spec, cache, tmp_path, capsys, monkeypatch):
    from cosparse.sw.cli import main
    from cosparse.sw.netspec import save
    save(spec, tmp_path / "net")
    monkeypatch.setenv("COSPARSE_CACHE", str(cache))
    args = ["throughput", "--netspec", str(tmp_path / "net"), "--batch", "6", "--repeat", "2",
            "--latency-runs", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "on the device at 250 MHz (assumed: the simulation's clock" in text
    assert "bit-exact with the golden model: yes" in text and "achieved" in text
    assert main(args + ["--instances", "2"]) == 2
    assert "simulates one compute unit" in capsys.readouterr().err
