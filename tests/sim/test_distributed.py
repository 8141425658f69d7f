"""``simulate`` sharded across a Dask cluster (cosparse.sim.distributed).

A 2-worker local cluster gives the serial run's results, in input order,
with one build shared by both workers; a worker killed while it simulates a
shard loses no result (its shard runs again on a worker that lives); a
worker that would simulate another design is refused.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cosparse.sim import distributed as sharding
from cosparse.sim.run import simulate
from cosparse.sw import netspec
from cosparse.sw.netspec import random_inputs, random_netspec

sys.path.insert(0, str(Path(__file__).parent))
from _sim_util import needs_verilator  # noqa: E402

#: A small random network: its Verilator build takes seconds, each shard a few.
NET = dict(seed=11, max_channels=4, max_size=8)


def _outputs(report):
    """What a sharded run must reproduce exactly: per input, in order, class, logits, verdict."""
    return [(r["index"], r["prediction"], r["logits"], r["bit_exact"]) for r in report["inputs"]]


def test_shards_are_contiguous_balanced_and_cover_every_input():
    rng = np.random.default_rng(0)
    for _ in range(200):
        count, shards = int(rng.integers(1, 300)), int(rng.integers(1, 40))
        ranges = sharding.shard_ranges(count, shards)
        assert len(ranges) == min(count, shards)
        assert ranges[0][0] == 0 and ranges[-1][1] == count
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        sizes = [b - a for a, b in ranges]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
        workers = int(rng.integers(1, 9))
        chosen = sharding.default_shards(count, workers)
        assert 1 <= chosen <= count
        assert chosen == count or chosen % workers == 0
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="shard|input"):
            sharding.shard_ranges(bad, 2)
        with pytest.raises(ValueError, match="shards"):
            sharding.shard_ranges(5, bad)


@pytest.mark.parametrize("extra, message", [
    (["--shards", "3"], "--shards applies to a sharded run"),
    (["--workers", "2", "--waves"], "--waves records one simulator run"),
])
def test_sharding_options_that_would_be_ignored_are_refused(extra, message, capsys):
    from cosparse.sw.cli import main
    assert main(["simulate", *extra]) == 2
    assert message in capsys.readouterr().err


def test_without_dask_the_sharding_options_name_the_install_command(monkeypatch, capsys):
    from cosparse.sw.cli import main
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    assert main(["simulate", "--workers", "2"]) == 2
    assert "pip install 'cosparse[dask]'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The network saved as a NetSpec, and 10 random inputs saved as features."""
    root = tmp_path_factory.mktemp("sharded")
    spec = random_netspec(**NET)
    x = random_inputs(spec, 10, seed=4)
    np.save(root / "x.npy", x)
    return spec, netspec.save(spec, root / "net"), root / "x.npy", x


def _cosparse(args, cache, progress="0"):
    env = dict(os.environ, COSPARSE_CACHE=str(cache), COSPARSE_PROGRESS=progress)
    run = subprocess.run([sys.executable, "-m", "cosparse.sw.cli", *args], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout), run.stderr


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The module's build cache, empty at first: its first sharded run builds the network."""
    return tmp_path_factory.mktemp("sharded-cache")


@pytest.fixture(scope="module")
def client():
    """A local cluster of 2 worker processes, one thread each (as `--workers 2` starts)."""
    with sharding.connect(2) as client:
        yield client


@pytest.mark.slow
@needs_verilator
def test_two_local_workers_give_the_serial_results_with_one_shared_build(small, client, cache):
    """On an empty cache both workers start a shard at once: one builds and the other waits
    and reuses its build. The results equal a serial run's, in input order."""
    import cosparse
    spec, _, _, x = small
    fresh = not any(cache.glob("sim/*/built.json"))
    sharded = cosparse.simulate(spec, x, client=client, shards=4, stress=3, cache=cache)
    serial = simulate(spec, x, progress=False, stress=3, cache=cache)
    assert serial["summary"]["build_cached"]  # the workers' build, reused
    assert serial["summary"]["all_bit_exact"] and sharded["summary"]["all_bit_exact"]
    assert _outputs(sharded) == _outputs(serial)
    assert [r["index"] for r in sharded["inputs"]] == list(range(len(x)))
    info = sharded["summary"]["sharded"]
    assert (info["workers"], info["shards"], info["builds"]) == (2, 4, 1 if fresh else 0)
    assert len({s["worker"] for s in sharded["shards"]}) == 2
    assert [(s["start"], s["stop"]) for s in sharded["shards"]] == [(0, 3), (3, 6), (6, 8),
                                                                     (8, 10)]
    # The serial run's stress inputs (the first 3) and its latency input, plus one per shard.
    assert sharded["stress_inputs"] == serial["stress_inputs"] == 3
    assert sharded["summary"]["outputs_checked"] == serial["summary"]["outputs_checked"] + 3
    assert sharded["summary"]["latency_cycles"] == serial["summary"]["latency_cycles"]
    assert Path(sharded["report_path"]).is_file() and Path(sharded["hw_config"]).is_file()


def _cosparse(args, cache):
    env = dict(os.environ, COSPARSE_CACHE=str(cache), COSPARSE_PROGRESS="1")
    run = subprocess.run([sys.executable, "-m", "cosparse.sw.cli", *args], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout), run.stderr


@pytest.mark.slow
@needs_verilator
def test_simulate_workers_2_gives_the_serial_results_and_reports_each_shard(small, cache):
    """`cosparse simulate --workers 2`: its own local cluster, the serial results in input
    order with their names, and a progress line as each shard finishes."""
    spec, folder, features, x = small
    sharded, progress = _cosparse(["simulate", "--netspec", str(folder), "--features",
                                   str(features), "--stress", "3", "--workers", "2",
                                   "--shards", "4", "--json"], cache)
    serial = simulate(spec, x, progress=False, stress=3, cache=cache)
    assert _outputs(sharded) == _outputs(serial) and sharded["summary"]["all_bit_exact"]
    assert [r["name"] for r in sharded["inputs"]] == [f"x.npy[{i}]" for i in range(len(x))]
    assert sharded["summary"]["sharded"]["workers"] == 2
    assert "cosparse: simulate 10 inputs in 4 shards on 2 workers ..." in progress
    assert sorted(re.findall(r"^shard (\d)/4 \(inputs (\d+)-(\d+)\): (\d+)/\4 bit-exact",
                             progress, re.M)) == [("1", "0", "2", "7"), ("2", "3", "5", "4"),
                                                  ("3", "6", "7", "3"), ("4", "8", "9", "3")]


def _running_simulation(cache, pids, deadline):
    """A worker simulating a shard now, and that run's job file: the run's folder is named
    after the worker's pid and holds the job until the run ends."""
    while time.monotonic() < deadline:
        for job in cache.glob("sim/*/runs/*/job.npz"):
            pid = int(re.match(r"\d{8}-\d{6}-(\d+)-", job.parent.name).group(1))
            if pid in pids:
                return pid, job
        time.sleep(0.05)
    raise AssertionError("no worker started a simulation")


def _kill_a_worker_mid_shard(client, cache, spec, x, **options):
    """Run ``simulate_sharded`` and SIGKILL a worker while it simulates a shard; returns
    (report or None, error or None, log lines, victim pid, whether the kill was mid-run)."""
    pids = set(client.run(os.getpid).values())
    outcome, lines = {}, []

    def run():
        try:
            outcome["report"] = sharding.simulate_sharded(client, spec, x, cache=cache,
                                                          log=lines.append, **options)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    victim, job = _running_simulation(cache, pids, time.monotonic() + 300)
    os.kill(victim, signal.SIGKILL)
    # The job still there: killed before its run ended (a run deletes its job as it ends).
    mid_shard = job.exists()
    thread.join(600)
    assert not thread.is_alive(), "the sharded run did not finish"
    return outcome.get("report"), outcome.get("error"), lines, victim, mid_shard


@pytest.mark.slow
@needs_verilator
def test_a_worker_killed_mid_shard_loses_no_result(small, client, cache):
    spec, _, _, x = small
    x = np.concatenate([x, random_inputs(spec, 14, seed=5)])
    report, error, lines, victim, mid_shard = _kill_a_worker_mid_shard(
        client, cache, spec, x, shards=6, stress=2)
    assert error is None, error
    if mid_shard:  # else (rarely) the kill came as the run ended, its result already sent
        assert victim not in {s["pid"] for s in report["shards"]}  # its shard ran again
    assert victim not in set(client.run(os.getpid).values())  # the worker is gone
    assert len(lines) == 6 and len(report["shards"]) == 6
    serial = simulate(spec, x, progress=False, stress=2, cache=cache)
    assert report["summary"]["all_bit_exact"]
    assert _outputs(report) == _outputs(serial)


@pytest.mark.slow
@needs_verilator
def test_a_shard_that_loses_every_worker_ends_the_run_naming_it(small, cache):
    """With no second try allowed (Dask's allowed-failures 0) the killed worker's shard
    cannot run again: one line naming the shard and the likely cause, not KilledWorker."""
    import dask
    spec, _, _, x = small
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            sharding.connect(2) as client:
        report, error, _, _, mid_shard = _kill_a_worker_mid_shard(
            client, cache, spec, x, shards=4, stress=0)
    if mid_shard:
        assert isinstance(error, RuntimeError), error
        assert re.match(r"shard \d \(inputs \d-\d\) lost every worker that ran it",
                        str(error)), error
        assert "out of memory" in str(error)


@pytest.mark.slow
@needs_verilator
def test_a_worker_that_would_simulate_another_design_is_refused(small, client, cache,
                                                                 monkeypatch):
    """This process computes another build key than the workers (as a client of another
    cosparse version would): the run stops naming it rather than mix two designs."""
    spec, _, _, x = small
    from cosparse.sim import build as build_module
    monkeypatch.setattr(build_module, "design_key", lambda *a, **k: "0" * 16)
    with pytest.raises(RuntimeError, match="another version of cosparse"):
        sharding.simulate_sharded(client, spec, x[:2], shards=1, stress=0, cache=cache)
