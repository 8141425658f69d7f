"""The driver's protocol (buffer layout, register sequence, validation) and backend choice."""

import sys

import numpy as np
import pytest

from cosparse.hw.axis_top import result_bytes as hw_result_bytes
from cosparse.hw.kernel import regmap
from cosparse.sw.driver import open_device, protocol
from cosparse.sw.driver.backends import BackendUnavailable
from cosparse.sw.netspec import random_inputs, random_netspec


@pytest.fixture(scope="module")
def spec():
    return random_netspec(1)


def test_register_map_is_the_hardware_one():
    assert protocol.regmap is regmap
    assert (regmap.CTRL, regmap.GIE, regmap.IER, regmap.ISR) == (0x00, 0x04, 0x08, 0x0C)
    assert [offset for _, offset, _, _ in regmap.ARGS] == [0x10, 0x18, 0x20]
    for classes in (2, 6, 12, 15, 16, 40):
        assert regmap.result_bytes(classes) == hw_result_bytes(classes)
        stride = regmap.record_stride(classes)
        assert stride >= regmap.result_bytes(classes) and 4096 % stride == 0


def test_pack_pads_each_input_to_whole_beats(spec):
    x = random_inputs(spec, 3, seed=1)
    layout = protocol.Layout.of(spec)
    buffer = protocol.pack_features(spec, x)
    assert buffer.dtype == np.uint8 and len(buffer) == 3 * layout.input_stride
    assert layout.input_stride % 64 == 0 and layout.input_stride >= layout.input_size
    rows = buffer.reshape(3, layout.input_stride)
    assert np.array_equal(rows[:, :layout.input_size].view(np.int8), x.reshape(3, -1))
    assert not rows[:, layout.input_size:].any()
    assert len(protocol.pack_features(spec, x[0])) == layout.input_stride  # one (C, H, W) input


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3, 3, 3), np.int8), "shape"),
    (np.full((1, 1, 9, 9), np.nan), "NaN"),
    (np.full((1, 1, 9, 9), 0.5), "fractional"),
    (np.full((1, 1, 9, 9), 200), r"span \[200, 200\]"),
    (np.zeros((1, 1, 9, 9), bool), "dtype bool"),
    (np.zeros((0, 1, 9, 9), np.int8), "no inputs"),
])
def test_pack_rejects_bad_inputs_by_name(spec, bad, message):
    with pytest.raises(ValueError, match=message):
        protocol.pack_features(spec, bad)


def test_unpack_decodes_records_and_rejects_unwritten_ones(spec):
    layout = protocol.Layout.of(spec)
    logits = np.array([[1, -2, 3, -4, 5, -2**31], [2**31 - 1, 0, 0, 0, 0, 7]], np.int32)
    buffer = np.zeros(layout.records_bytes(2), np.uint8)
    for n, (row, cls) in enumerate(zip(logits, (5, 3))):
        record = row.astype("<i4").tobytes() + bytes([cls])
        buffer[n * layout.record_stride:n * layout.record_stride + len(record)] = list(record)
    got, predictions = protocol.unpack_results(layout, buffer, 2)
    assert np.array_equal(got, logits) and predictions.tolist() == [5, 3]
    with pytest.raises(ValueError, match="holds 128 bytes; 3 records need 192"):
        protocol.unpack_results(layout, buffer, 3)
    with pytest.raises(ValueError, match="record 0 holds class 7 of 6: not written"):
        protocol.unpack_results(layout, np.full(layout.results_bytes(1), 0xFF, np.uint8), 1)


def test_start_writes_are_the_register_sequence(spec):
    layout = protocol.Layout.of(spec)
    writes = protocol.start_writes(layout, 0x1_2345_6740, 0x2_0000_1000, 9)
    assert writes == [(0x10, 0x2345_6740), (0x14, 1), (0x18, 0x1000), (0x1C, 2), (0x20, 9),
                      (0x00, regmap.AP_START)]
    with pytest.raises(ValueError, match="features address 0x1001 is not 64-byte aligned"):
        protocol.start_writes(layout, 0x1001, 0x2000, 1)
    with pytest.raises(ValueError, match="count must be an integer from 1"):
        protocol.start_writes(layout, 0x1000, 0x2000, 0)
    with pytest.raises(ValueError, match="not a 64-bit address"):
        protocol.start_writes(layout, 1 << 64, 0x2000, 1)


def _trailer(layout, count, *, magic=regmap.TRAILER_MAGIC, status=0, cycles=0, fingerprint=0,
             written=None, version=regmap.TRAILER_VERSION):
    """A results buffer of ``count`` zero records and a trailer with these fields."""
    values = {"magic": magic, "status": status, "cycles": cycles, "fingerprint": fingerprint,
              "count": count if written is None else written, "version": version}
    buffer = np.zeros(layout.results_bytes(count), np.uint8)
    start = layout.records_bytes(count)
    for name, offset, size in regmap.TRAILER_FIELDS:
        buffer[start + offset:start + offset + size] = list(values[name].to_bytes(size, "little"))
    return buffer


def test_trailer_layout_follows_the_record_stride(spec):
    layout = protocol.Layout.of(spec)
    offsets = [(offset, size) for _, offset, size in regmap.TRAILER_FIELDS]
    assert offsets[0][0] == 0 and sum(size for _, size in offsets) == regmap.TRAILER_BYTES
    assert all(a + n == b for (a, n), (b, _) in zip(offsets, offsets[1:]))  # packed, in order
    assert regmap.TRAILER_BYTES <= regmap.BEAT_BYTES <= layout.record_stride
    assert layout.results_bytes(5) == 6 * layout.record_stride == layout.records_bytes(6)
    assert regmap.TRAILER_MAGIC.to_bytes(4, "little") == b"CSPT"


def test_trailer_is_decoded_and_checked(spec):
    from cosparse.hw.kernel.fingerprint import netspec_fingerprint
    layout = protocol.Layout.of(spec)
    mine = netspec_fingerprint(spec)
    trailer = protocol.decode_trailer(layout, _trailer(layout, 3, status=1, cycles=(7 << 32) | 5,
                                                       fingerprint=mine), 3)
    assert trailer == protocol.Trailer(cycles=(7 << 32) | 5, error=True, fingerprint=mine,
                                       count=3)
    protocol.check_fingerprint(spec, trailer)
    with pytest.raises(protocol.NetSpecMismatch, match="generated from another NetSpec .*"
                                                       "pass the --netspec"):
        protocol.check_fingerprint(random_netspec(2), trailer)
    with pytest.raises(protocol.TrailerError, match="no trailer after the 2 results.*did not "
                                                    "complete"):
        protocol.decode_trailer(layout, _trailer(layout, 2, magic=0xFFFF_FFFF), 2)
    with pytest.raises(protocol.TrailerError, match="trailer version 9"):
        protocol.decode_trailer(layout, _trailer(layout, 2, version=9), 2)
    with pytest.raises(protocol.TrailerError, match="counts 1 results for a run of 2"):
        protocol.decode_trailer(layout, _trailer(layout, 2, written=1), 2)
    with pytest.raises(protocol.TrailerError, match="the trailer after 2 records ends at"):
        protocol.decode_trailer(layout, _trailer(layout, 1), 2)


def test_fingerprint_follows_content_not_identity(spec, tmp_path):
    from cosparse.hw.kernel.fingerprint import netspec_fingerprint
    from cosparse.sw.netspec import load, save
    save(spec, tmp_path / "net")
    assert netspec_fingerprint(load(tmp_path / "net")) == netspec_fingerprint(spec)
    assert netspec_fingerprint(random_netspec(2)) != netspec_fingerprint(spec)
    assert 0 <= netspec_fingerprint(spec) < 1 << 64
    with pytest.raises(TypeError, match="spec must be a NetSpec"):
        netspec_fingerprint("net")


def test_backend_choice_is_checked(spec, monkeypatch):
    with pytest.raises(ValueError, match="unknown backend 'fpga'; choose one of sim, xrt"):
        open_device("fpga", spec)
    monkeypatch.setitem(sys.modules, "pyxrt", None)  # as on a machine without XRT
    with pytest.raises(BackendUnavailable, match=r"pyxrt.*install XRT.*setup\.sh"):
        open_device("xrt", spec, xclbin="kernel.xclbin")
    with pytest.raises(ValueError, match="needs the kernel's xclbin"):
        open_device("xrt", spec)
    with pytest.raises(ValueError, match="backpressure must be a probability"):
        open_device("sim", spec, backpressure=1.5)


def test_cli_xrt_without_pyxrt_is_one_clear_error(tmp_path, capsys, monkeypatch):
    from cosparse.sw.cli import main
    from cosparse.sw.netspec import save
    spec = random_netspec(1)
    save(spec, tmp_path / "net")
    np.save(tmp_path / "x.npy", random_inputs(spec, 2))
    monkeypatch.setitem(sys.modules, "pyxrt", None)
    code = main(["run", "--backend", "xrt", "--xclbin", "k.xclbin", "--netspec",
                 str(tmp_path / "net"), "--features", str(tmp_path / "x.npy")])
    assert code == 2
    assert "cosparse run: error: the xrt backend needs XRT's Python bindings (pyxrt)" in \
        capsys.readouterr().err
