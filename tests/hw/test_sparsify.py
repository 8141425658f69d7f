"""Sparsifier (and its Compactor) against a numpy model of hw/layouts.py's sparse stream."""

import numpy as np
import pytest
from amaranth.back import verilog

from cosparse.hw.sparsify import Sparsifier
from cosparse.sim.streams import accepted_each_cycle, run_stream

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

COORDS = ("c", "y", "x")


def walk(x: np.ndarray, order: str):
    """(coordinates, value) of every element in stream order."""
    if x.ndim == 1:
        return [((i,), int(v)) for i, v in enumerate(x)]
    axes = (1, 2, 0) if order == "position_major" else (0, 1, 2)
    idx = np.indices(x.shape).transpose(*(a + 1 for a in axes), 0).reshape(-1, 3)
    return [(tuple(map(int, c)), int(x[tuple(c)])) for c in idx]


def expected_beats(x: np.ndarray, order: str, skip_zeros: bool):
    """The sparse stream of one input: hw/layouts.py's rules, written out."""
    elements = [(c, v) for c, v in walk(x, order) if v != 0 or not skip_zeros]
    if not elements:
        elements = [((0,) * x.ndim, 0)]
    names = COORDS if x.ndim == 3 else ("index",)
    return [{"value": v, **dict(zip(names, c)), "last": int(i == len(elements) - 1)}
            for i, (c, v) in enumerate(elements)]


def as_dict(payload, ndim):
    names = COORDS if ndim == 3 else ("index",)
    return {"value": int(payload.value), **{n: int(payload[n]) for n in names},
            "last": int(payload.last)}


def run(dut, beats_in, count, *, stall, seed):
    return run_stream(dut, beats_in, count, stall=stall, seed=seed)


def random_inputs(rng, shape, count):
    inputs = []
    for _ in range(count):
        density = rng.choice([0.0, 0.05, 0.3, 1.0])
        x = rng.integers(-128, 128, shape) * (rng.random(shape) < density)
        if rng.random() < 0.3:  # a final element that is zero after non-zeros
            x.reshape(-1)[-1 if x.ndim == 1 else -1] = 0
        inputs.append(x.astype(np.int64))
    return inputs


def dense_beats(inputs, order):
    beats = []
    for x in inputs:
        values = [v for _, v in walk(x, order)]
        beats += [{"value": v, "last": int(i == len(values) - 1)} for i, v in enumerate(values)]
    return beats


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("skip_zeros", [True, False])
def test_matches_model(seed, skip_zeros):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 40)),) if seed % 3 == 0 else \
        tuple(int(v) for v in rng.integers(1, 5, 3))
    order = "flat" if len(shape) == 1 else str(rng.choice(["flat", "position_major"]))
    inputs = random_inputs(rng, shape, 4)
    if seed == 1:
        inputs[0][...] = 0
    expected = [b for x in inputs for b in expected_beats(x, order, skip_zeros)]
    dut = Sparsifier(shape, skip_zeros=skip_zeros, order=order)
    got = run(dut, dense_beats(inputs, order), len(expected), stall=0.3, seed=seed)
    assert [as_dict(p, len(shape)) for p in got] == expected


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("skip_zeros", [True, False])
def test_vector_input_matches_model(seed, skip_zeros):
    """One position per beat (a conv engine's output): the same stream as position-major
    scalar input, every position's channels ascending."""
    rng = np.random.default_rng(50 + seed)
    shape = tuple(int(v) for v in rng.integers(1, 5, 3))
    inputs = random_inputs(rng, shape, 4)
    if seed == 1:
        inputs[0][...] = 0
    expected = [b for x in inputs for b in expected_beats(x, "position_major", skip_zeros)]
    beats = []
    for x in inputs:
        columns = x.transpose(1, 2, 0).reshape(-1, shape[0]).tolist()
        beats += [{"values": col, "last": int(i == len(columns) - 1)}
                  for i, col in enumerate(columns)]
    dut = Sparsifier(shape, skip_zeros=skip_zeros, vector=True)
    got = run(dut, beats, len(expected), stall=0.3, seed=seed)
    assert [as_dict(p, 3) for p in got] == expected


def test_short_input_restarts_coordinates():
    """``last`` alone delimits inputs: a short input's elements take the first coordinates."""
    shape = (2, 2, 2)
    beats = [{"value": 5, "last": 0}, {"value": 0, "last": 0}, {"value": 7, "last": 1},
             {"value": 3, "last": 1}]
    dut = Sparsifier(shape)
    got = run(dut, beats, 3, stall=0.3, seed=3)
    assert [as_dict(p, 3) for p in got] == [
        {"value": 5, "c": 0, "y": 0, "x": 0, "last": 0},
        {"value": 7, "c": 0, "y": 0, "x": 1, "last": 1},
        {"value": 3, "c": 0, "y": 0, "x": 0, "last": 1}]


def test_one_beat_per_cycle():
    shape = (2, 3, 3)
    rng = np.random.default_rng(0)
    inputs = random_inputs(rng, shape, 3)
    assert all(accepted_each_cycle(Sparsifier(shape), dense_beats(inputs, "position_major")))


@pytest.mark.parametrize("kwargs, error", [
    ({"shape": (4, 4)}, TypeError), ({"shape": (0,)}, ValueError),
    ({"shape": (4,), "order": "column"}, ValueError),
    ({"shape": (4,), "skip_zeros": 1}, TypeError),
    ({"shape": (4,), "vector": True}, ValueError),
    ({"shape": (2, 2, 2), "order": "flat", "vector": True}, ValueError)])
def test_rejects_bad_parameters(kwargs, error):
    with pytest.raises(error):
        Sparsifier(**kwargs)


def test_converts_to_verilog():
    for dut in (Sparsifier((3, 4, 5), order="flat"), Sparsifier((7,), skip_zeros=False)):
        assert "module" in verilog.convert(dut, name="sparsify")
