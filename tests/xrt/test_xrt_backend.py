"""The xrt backend's own code end to end, through the pyxrt double over the simulated kernel.

The double (fake_pyxrt.py) has only the names and overloads of XRT 2023.2's
pyxrt; its compute units run the Verilator-built kernel of the shared test
network (``driver_cache``, tests/conftest.py), so what the backend reads
back, trailer included, is what the RTL wrote.
"""

import dataclasses
import json
import sys
import types

import numpy as np
import pytest

from cosparse.sw import golden
from cosparse.sw.driver import open_device, protocol
from cosparse.sw.driver.backends.xrt import KernelTimeout
from cosparse.sw.netspec import random_inputs, save


@pytest.fixture(scope="module")
def netspec_folder(tmp_path_factory, driver_spec):
    folder = tmp_path_factory.mktemp("xrt-net") / "net"
    save(driver_spec, folder)
    return folder


def _xclbin(fake, tmp_path, folder, cache, **options):
    return fake.write_xclbin(tmp_path / "cosparse_kernel.xclbin", netspec=folder, cache=cache,
                             **options)


@pytest.fixture(scope="module")
def two_units(fake_pyxrt, tmp_path_factory, netspec_folder, driver_cache, driver_spec):
    path = _xclbin(fake_pyxrt, tmp_path_factory.mktemp("xclbin"), netspec_folder, driver_cache,
                   units=2)
    with open_device("xrt", driver_spec, xclbin=path, pyxrt=fake_pyxrt, check=True) as device:
        yield device


def test_a_hundred_clips_bit_exact_over_two_units(two_units, driver_spec):
    assert two_units.backend.units == 2
    assert two_units.backend.clock_hz == 250e6
    x = random_inputs(driver_spec, 100, seed=21)
    result = two_units.infer(x)
    expected = golden.run(driver_spec, x, keep_activations=False)
    assert result.bit_exact and len(result.predictions) == 100
    assert np.array_equal(result.logits, expected.logits)
    assert len(result.unit_cycles) == 2 and result.cycles == max(result.unit_cycles) > 0


def test_runs_are_dealt_to_the_units_and_returned_in_order(two_units, driver_spec):
    backend = two_units.backend
    x = random_inputs(driver_spec, 7, seed=22)
    jobs = [(protocol.pack_features(driver_spec, x[a:b]), b - a)
            for a, b in ((0, 3), (3, 4), (4, 6), (6, 7))]
    outputs = backend.run(jobs)
    assert [out.unit for out in outputs] == [0, 1, 0, 1]
    expected = golden.run(driver_spec, x, keep_activations=False)
    got = np.concatenate([protocol.unpack_results(two_units.layout, out.results, count)[0]
                          for (_, count), out in zip(jobs, outputs)])
    assert np.array_equal(got, expected.logits)
    # buffers: one pair per unit and batch size, made once and reused
    before = {u.index: dict(u.buffers) for u in backend._units}
    backend.run(jobs)
    assert all(u.buffers == before[u.index] for u in backend._units)
    assert {2, 3} <= set(backend._units[0].buffers) and 1 not in backend._units[0].buffers
    assert 1 in backend._units[1].buffers and not {2, 3} & set(backend._units[1].buffers)


def test_a_kernel_of_another_netspec_is_refused(fake_pyxrt, tmp_path, netspec_folder,
                                                driver_cache, driver_spec):
    path = _xclbin(fake_pyxrt, tmp_path, netspec_folder, driver_cache, units=1)
    other = dataclasses.replace(driver_spec, name=driver_spec.name + "-retrained")
    with open_device("xrt", other, xclbin=path, pyxrt=fake_pyxrt) as device:
        with pytest.raises(protocol.NetSpecMismatch, match="pass the --netspec"):
            device.infer(random_inputs(other, 2, seed=23))


def test_a_kernel_that_never_completes_times_out(fake_pyxrt, tmp_path, netspec_folder,
                                                 driver_cache, driver_spec):
    path = _xclbin(fake_pyxrt, tmp_path, netspec_folder, driver_cache, units=1,
                   never_completes=True)
    with open_device("xrt", driver_spec, xclbin=path, pyxrt=fake_pyxrt, timeout=0.3) as device:
        with pytest.raises(KernelTimeout, match=r"cosparse_kernel_1 did not complete .* 0\.3 s"):
            device.infer(random_inputs(driver_spec, 1, seed=24))


def test_units_asked_for_and_xrt_before_hw_context(fake_pyxrt, tmp_path, netspec_folder,
                                                   driver_cache, driver_spec):
    path = _xclbin(fake_pyxrt, tmp_path, netspec_folder, driver_cache, units=2)
    with pytest.raises(ValueError, match="holds 2 compute unit.*not the 3 asked for"):
        open_device("xrt", driver_spec, xclbin=path, pyxrt=fake_pyxrt, instances=3)
    # XRT 2022.x has no hw_context: kernels are opened on the device and the xclbin's uuid
    older = types.ModuleType("pyxrt")
    older.__dict__.update({k: v for k, v in vars(fake_pyxrt).items() if k != "hw_context"})
    with open_device("xrt", driver_spec, xclbin=path, pyxrt=older, instances=1,
                     check=True) as device:
        assert device.backend.units == 1
        one = device.infer(random_inputs(driver_spec, 1, seed=25)[0])  # one (C, H, W) input
        assert one.bit_exact and one.logits.shape == (1, len(driver_spec.classes))


def test_xclbin_without_the_kernel(fake_pyxrt, tmp_path, netspec_folder, driver_cache,
                                   driver_spec):
    path = _xclbin(fake_pyxrt, tmp_path, netspec_folder, driver_cache, kernel_name="vadd")
    with pytest.raises(ValueError, match="holds the kernels vadd, not 'cosparse_kernel'"):
        open_device("xrt", driver_spec, xclbin=path, pyxrt=fake_pyxrt)


def test_imported_as_pyxrt(fake_pyxrt, monkeypatch, tmp_path, netspec_folder, driver_cache,
                           driver_spec):
    """Without ``pyxrt=``, the backend imports the module named pyxrt (here: the double)."""
    monkeypatch.setitem(sys.modules, "pyxrt", fake_pyxrt)
    path = _xclbin(fake_pyxrt, tmp_path, netspec_folder, driver_cache, units=1)
    with open_device("xrt", driver_spec, xclbin=path) as device:
        assert device.backend.units == 1 and device.backend._xrt is fake_pyxrt


def test_cli_throughput_on_two_units(fake_pyxrt, monkeypatch, tmp_path, netspec_folder,
                                     driver_cache, driver_spec, capsys):
    from cosparse.hw.generate import summary
    from cosparse.sw.cli import main
    monkeypatch.setitem(sys.modules, "pyxrt", fake_pyxrt)
    path = _xclbin(fake_pyxrt, tmp_path, netspec_folder, driver_cache, units=2)
    common = ["throughput", "--backend", "xrt", "--xclbin", str(path), "--batch", "8",
              "--repeat", "1", "--latency-runs", "2"]
    assert main(common + ["--netspec", str(netspec_folder), "--check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["units"] == 2 and report["bit_exact"] is True and report["inputs"] == 8
    assert report["clock_hz"] == 250e6 and "device" in report["clock_source"]
    interval = summary(driver_spec)["initiation_interval"]
    assert report["analytic"] == {"initiation_interval": interval,
                                  "inputs_per_second": 2 * 250e6 / interval,
                                  "achieved_fraction": pytest.approx(
                                      report["inputs_per_second"] * interval / 500e6)}
    # four inputs per unit, each unit's pipeline filled once: well below the bound, not above
    assert 0.2 < report["analytic"]["achieved_fraction"] < 1
    assert report["inputs_per_second"] == pytest.approx(8 * 250e6 / report["batch_cycles"][0])
    assert report["latency"]["cycles"]["p50"] > interval
    # the same xclbin with another NetSpec: refused before any figure is printed
    other = dataclasses.replace(driver_spec, name=driver_spec.name + "-retrained")
    save(other, tmp_path / "other")
    assert main(common + ["--netspec", str(tmp_path / "other")]) == 2
    assert "generated from another NetSpec" in capsys.readouterr().err
