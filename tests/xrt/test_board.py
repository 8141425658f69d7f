"""On a real Alveo card: the same correctness and throughput checks as through the double.

Marked ``board``; they run where ``COSPARSE_XCLBIN`` names an xclbin that
``cosparse build --board u250`` linked, ``COSPARSE_NETSPEC`` the NetSpec
folder it was built from (default: the shipped one), XRT's pyxrt imports
and a card answers; anywhere else they are skipped, saying which is
missing. ``COSPARSE_DEVICE`` picks the card (index or BDF, default 0).
"""

import os

import pytest

from cosparse.sw import assets
from cosparse.sw.driver import open_device
from cosparse.sw.driver.backends import BackendUnavailable
from cosparse.sw.driver.throughput import measure
from cosparse.sw.netspec import load, random_inputs

pytestmark = pytest.mark.board


@pytest.fixture(scope="module")
def card():
    xclbin = os.environ.get("COSPARSE_XCLBIN")
    if not xclbin:
        pytest.skip("no Alveo card configured: set COSPARSE_XCLBIN to a linked "
                    "cosparse_kernel.xclbin (and COSPARSE_NETSPEC to its NetSpec folder)")
    folder = os.environ.get("COSPARSE_NETSPEC") or assets.require(assets.DEFAULT_NETSPEC,
                                                                 "default NetSpec")
    device = os.environ.get("COSPARSE_DEVICE", "0")
    try:
        driver = open_device("xrt", load(folder), xclbin=xclbin, check=True,
                             device=int(device) if device.isdigit() else device)
    except BackendUnavailable as error:
        pytest.skip(f"no usable card: {error}")
    with driver:
        yield driver


def test_card_is_bit_exact_on_every_unit(card):
    x = random_inputs(card.spec, 64 * card.backend.units, seed=31)
    result = card.infer(x)
    assert result.bit_exact and len(result.unit_cycles) == card.backend.units


def test_card_throughput_reaches_the_analytic_bound(card):
    report = measure(card, batch=256 * card.backend.units, repeat=3)
    assert report["bit_exact"] and report["clock_hz"] > 0
    assert 0.5 < report["analytic"]["achieved_fraction"] <= 1.0
