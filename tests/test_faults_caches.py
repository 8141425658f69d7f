"""Fault injection on every cache but the simulator builds' (issue 14, item 1, "every cache").

The synthesis results, the RTLIL netlists of ``cosparse resources``, the logic
depths and the YoWASP compiled-tool cache: two processes racing on one empty
cache both succeed (one does the work, the other waits and reuses it), and a
truncated or corrupt entry is redone, never a traceback or a wrong result.
The data-set features cache has its own faults in test_faults_inputs.py.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from amaranth.lib.fifo import SyncFIFOBuffered

from cosparse.boards import resources, xilinx_synth
from cosparse.boards.yosys import ToolMissing, find_tool
from cosparse.sw import cache


def _yosys():
    try:
        find_tool("yosys")
    except ToolMissing as error:
        pytest.skip(str(error))


# ---- the helper itself ----------------------------------------------------------------------

def test_a_second_holder_of_a_lock_waits(tmp_path):
    entry, order, heard = tmp_path / "entry", [], []

    def second():
        with cache.locked(entry, log=heard.append):
            order.append("second")

    with cache.locked(entry):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"] and "waiting for another process" in heard[0]


def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "marker.json"
    cache.write_atomic(path, "old")
    with pytest.raises(KeyboardInterrupt):
        with cache.atomic_path(path) as temporary:
            temporary.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["marker.json"]


@pytest.mark.parametrize("content, problem", [
    (None, "missing"), (b"", "unreadable"), (b'{"a": 1', "unreadable"),
    (b"\xff\xfe", "unreadable")])
def test_read_json_names_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "marker.json"
    if content is not None:
        path.write_bytes(content)
    value, why = cache.read_json(path)
    assert value is None and why.startswith(problem)


# ---- synthesis results ----------------------------------------------------------------------

def _fifo(depth=4):
    return resources.module_netlist(SyncFIFOBuffered(width=9, depth=depth))


_SYNTHESISE = textwrap.dedent("""
    import json, sys
    from amaranth.lib.fifo import SyncFIFOBuffered
    from cosparse.boards import resources, xilinx_synth
    top, text = resources.module_netlist(SyncFIFOBuffered(width=9, depth=int(sys.argv[2])))
    used = xilinx_synth.synthesise(text, top, cache=sys.argv[1])
    print(json.dumps(used.as_dict()))
""")


def _synthesise_in(cache_dir, depth, env):
    return subprocess.Popen([sys.executable, "-c", _SYNTHESISE, str(cache_dir), str(depth)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(runs):
    found = []
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
        found.append(json.loads(out))
    return found


def test_two_processes_synthesising_one_module_on_an_empty_cache(tmp_path):
    """One synthesises, the other waits for the lock and reuses the result."""
    _yosys()
    runs = [_synthesise_in(tmp_path / "synth", 4, dict(os.environ)) for _ in range(2)]
    first, second = _results(runs)
    assert sorted([first["cached"], second["cached"]]) == [False, True]
    assert {k: v for k, v in first.items() if k in ("lut", "ff", "carry", "logic_levels")} == \
        {k: v for k, v in second.items() if k in ("lut", "ff", "carry", "logic_levels")}
    assert len(list((tmp_path / "synth").glob("*/utilisation.json"))) == 1


@pytest.mark.slow
def test_two_syntheses_on_an_empty_yowasp_cache_do_not_crash(tmp_path):
    """Concurrent YoWASP Yosys processes sharing one empty compiled-tool cache (once: SIGBUS).

    Two different modules, so both synthesise at once; each process compiles
    Yosys's WebAssembly only if it finds no cache, under the cache's lock.
    """
    _yosys()
    if not os.path.basename(find_tool("yosys")).startswith("yowasp-"):
        pytest.skip("a native Yosys has no compiled-tool cache")
    env = dict(os.environ, YOWASP_CACHE_DIR=str(tmp_path / "yowasp"))
    runs = [_synthesise_in(tmp_path / "synth", depth, env) for depth in (4, 8)]
    assert [r["cached"] for r in _results(runs)] == [False, False]


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory):
    """One real synthesis of a small FIFO: its cache folder, RTLIL, top and result."""
    _yosys()
    top, text = _fifo()
    folder = tmp_path_factory.mktemp("synth")
    return folder, text, top, xilinx_synth.synthesise(text, top, cache=folder)


@pytest.mark.parametrize("corruption", [
    "truncated", "empty", "not an object", "field missing", "unknown field", "string lut",
    "bool ff"])
def test_a_damaged_synthesis_result_is_not_reused(synthesised, tmp_path, corruption):
    template, text, top, good = synthesised
    key = xilinx_synth.synthesis_key(text, top)
    shutil.copytree(template / key, tmp_path / key)
    marker = tmp_path / key / "utilisation.json"
    info = json.loads(marker.read_text())
    assert xilinx_synth.cached(text, top, cache=tmp_path).lut == good.lut
    damaged = {
        "truncated": marker.read_text()[:40], "empty": "", "not an object": "[1]",
        "field missing": json.dumps({k: v for k, v in info.items() if k != "lut"}),
        "unknown field": json.dumps({**info, "extra": 1}),
        "string lut": json.dumps({**info, "lut": "12"}),
        "bool ff": json.dumps({**info, "ff": True}),
    }[corruption]
    marker.write_text(damaged)
    assert xilinx_synth.cached(text, top, cache=tmp_path) is None
    if corruption == "truncated":  # one real rerun: the damaged folder is replaced
        again = xilinx_synth.synthesise(text, top, cache=tmp_path)
        assert not again.cached and again.lut == good.lut
        assert xilinx_synth.cached(text, top, cache=tmp_path).lut == good.lut


# ---- RTLIL netlists of cosparse resources ---------------------------------------------------

def test_a_damaged_netlist_entry_is_converted_again(tmp_path):
    from cosparse.sw.netspec import random_netspec
    spec = random_netspec(12, max_channels=3, max_size=6)
    first = resources._convert(spec, None, False, 0, str(tmp_path))
    assert first["converted"]
    (entry,) = tmp_path.glob("*.json")
    assert not resources._convert(spec, None, False, 0, str(tmp_path))["converted"]
    for damaged in ("", '{"name": 1', '{"name": "x"}'):
        entry.write_text(damaged)
        again = resources._convert(spec, None, False, 0, str(tmp_path))
        assert again["converted"] and again["rtlil"] == first["rtlil"]


# ---- logic depths ---------------------------------------------------------------------------

def test_a_damaged_depth_result_is_measured_again(tmp_path):
    _yosys()
    from cosparse.hw import depth
    from cosparse.hw.argmax import Argmax
    good = depth.measure(Argmax(3), "argmax", cache=tmp_path)
    (marker,) = tmp_path.glob("*/depth.json")
    for damaged in ("", '{"top": "argmax"', json.dumps({**good.as_dict(), "levels": "3"}),
                    json.dumps({**good.as_dict(), "ff": True})):
        marker.write_text(damaged)
        assert depth._read_result(marker) is None
    marker.write_text('{"top": "argmax"')  # one real rerun
    assert depth.measure(Argmax(3), "argmax", cache=tmp_path) == good
    assert not list(tmp_path.glob("*/.*"))
