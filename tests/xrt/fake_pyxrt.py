"""A test double of XRT's ``pyxrt`` with the simulated kernel as its compute units.

It exposes only names of the binding's surface (``pyxrt_surface.py``,
XRT 2023.2) with the same overloads, checked on every call as pybind11
does (a call matching no overload is a TypeError), and reproduces the
semantics the xrt backend relies on:

- a buffer object (``bo``) has host memory and device memory; ``write`` and
  ``read`` touch the host side only, ``sync`` copies between the two, so a
  missing sync loses data as on a card; each buffer lives in one memory
  bank (the ``group_id`` it was made with) and has a 4 KiB-aligned device
  address;
- a compute unit can only reach its own bank (a buffer of another bank
  passed to it is an error), runs one command at a time and queues the
  rest; ``kernel(...)`` sets the arguments and starts a run at once;
- ``run.wait(timeout_ms)`` returns ``ert_cmd_state.ERT_CMD_STATE_COMPLETED``
  or, past the timeout, ``ERT_CMD_STATE_TIMEOUT``;
- ``kernel(device, uuid, "name:{cu}")`` (or with a ``hw_context``) opens one
  compute unit and raises RuntimeError when the xclbin has none so named.

An "xclbin" here is a JSON file (:func:`write_xclbin`) naming the NetSpec,
the build cache and the number of compute units; each unit runs the
Verilator-built kernel through the sim backend's bench
(:class:`cosparse.sw.driver.backends.sim.SimBackend`), so the results and
the trailer in device memory are the real kernel's. Simulator invocations
are serialised (one process at a time; the sim backend redirects the
interpreter's stdout while it runs one), while the host sees every unit's
run in flight at once. ``never_completes`` makes a kernel that never
finishes a run.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("pyxrt_surface",
                                               Path(__file__).with_name("pyxrt_surface.py"))
surface = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(surface)

FORMAT = "cosparse-fake-xclbin"
BANKS = 4
BDF = "0000:3b:00.1"
_SIMULATOR = threading.Lock()


# ---- enums ---------------------------------------------------------------------------------

class _EnumValue:
    def __init__(self, enum: str, name: str, value: int):
        self.enum, self.name, self.value = enum, name, value

    def __repr__(self):
        return f"<{self.enum}.{self.name}: {self.value}>"

    def __str__(self):
        return f"{self.enum}.{self.name}"

    def __int__(self):
        return self.value

    def __hash__(self):
        return hash((self.enum, self.value))

    def __eq__(self, other):
        return isinstance(other, _EnumValue) and (other.enum, other.value) == (self.enum,
                                                                               self.value)


def _enum(qualname: str):
    cls = type(qualname.split(".")[-1], (), {"__doc__": f"pyxrt enum {qualname}"})
    values = [_EnumValue(qualname, name, i) for i, name in enumerate(surface.ENUMS[qualname])]
    for v in values:
        setattr(cls, v.name, v)
    cls.__members__ = {v.name: v for v in values}
    return cls


xclBOSyncDirection = _enum("xclBOSyncDirection")
ert_cmd_state = _enum("ert_cmd_state")
xrt_info_device = _enum("xrt_info_device")
XCL_BO_FLAGS_NONE = 0


# ---- overload checking ---------------------------------------------------------------------

def _classes():
    return {"uuid": uuid, "hw_context": hw_context, "device": device, "run": run,
            "kernel": kernel, "bo": bo, "xclbin": xclbin,
            "xclbin.xclbinip": xclbin.xclbinip, "xclbin.xclbinkernel": xclbin.xclbinkernel,
            "xclbin.xclbinmem": xclbin.xclbinmem}


def _fits(kind: str, value) -> bool:
    if kind == "any":
        return True
    if kind == "int":
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "buffer":
        try:
            memoryview(value)
        except TypeError:
            return False
        return True
    if kind in surface.ENUMS:
        return isinstance(value, _EnumValue) and value.enum == kind
    return isinstance(value, _classes()[kind])


def _matches(overload: tuple, args: tuple) -> bool:
    if overload == ("any",):
        return True
    return len(overload) == len(args) and all(_fits(k, a) for k, a in zip(overload, args))


def bound(qualname: str):
    """Check each call of the method against the binding's overloads of ``qualname``."""
    owner, method = qualname.rsplit(".", 1)
    overloads = surface.CLASSES[owner][method]

    def wrap(function):
        def checked(self, *args, **kwargs):
            if kwargs or not any(_matches(o, args) for o in overloads):
                raise TypeError(f"{method}(): incompatible function arguments. The following "
                                f"argument types are supported: {overloads}; invoked with "
                                f"{tuple(type(a).__name__ for a in args)}"
                                + (f" and keywords {sorted(kwargs)}" if kwargs else ""))
            return function(self, *args)
        checked.__name__, checked.__doc__ = method, function.__doc__
        checked.bound_as = qualname
        return checked
    return wrap


# ---- the fake card -------------------------------------------------------------------------

def write_xclbin(path, *, netspec, cache, units: int = 1, never_completes: bool = False,
                 clock_mhz: int = 250, kernel_name: str = "cosparse_kernel") -> Path:
    """Write a fake xclbin: ``units`` compute units of the kernel of the NetSpec folder."""
    path = Path(path)
    path.write_text(json.dumps({"format": FORMAT, "kernel": kernel_name, "units": units,
                                "netspec": str(netspec), "cache": str(cache),
                                "never_completes": never_completes, "clock_mhz": clock_mhz,
                                "platform": "xilinx_u250_gen3x16_xdma_4_1_202210_1"}))
    return path


class uuid:
    @bound("uuid.__init__")
    def __init__(self, text):
        self._text = text

    @bound("uuid.to_string")
    def to_string(self):
        return self._text

    def __eq__(self, other):
        return isinstance(other, uuid) and other._text == self._text

    __hash__ = None


class xclbin:
    class xclbinip:
        @bound("xclbin.xclbinip.__init__")
        def __init__(self):
            self._name = ""

        @bound("xclbin.xclbinip.get_name")
        def get_name(self):
            return self._name

    class xclbinkernel:
        @bound("xclbin.xclbinkernel.__init__")
        def __init__(self):
            self._name, self._args = "", 0

        @bound("xclbin.xclbinkernel.get_name")
        def get_name(self):
            return self._name

        @bound("xclbin.xclbinkernel.get_num_args")
        def get_num_args(self):
            return self._args

    class xclbinmem:
        @bound("xclbin.xclbinmem.__init__")
        def __init__(self):
            self._index = 0

        @bound("xclbin.xclbinmem.get_tag")
        def get_tag(self):
            return f"DDR[{self._index}]"

        @bound("xclbin.xclbinmem.get_base_address")
        def get_base_address(self):
            return self._index << 34

        @bound("xclbin.xclbinmem.get_size_kb")
        def get_size_kb(self):
            return 16 << 20

        @bound("xclbin.xclbinmem.get_used")
        def get_used(self):
            return True

        @bound("xclbin.xclbinmem.get_index")
        def get_index(self):
            return self._index

    @bound("xclbin.__init__")
    def __init__(self, *args):
        self._doc = None
        if args:
            if not isinstance(args[0], str):
                raise TypeError("the fake reads xclbin files only")
            try:
                doc = json.loads(Path(args[0]).read_text())
            except (OSError, ValueError) as error:
                raise RuntimeError(f"Failed to load xclbin {args[0]}: {error}") from None
            if doc.get("format") != FORMAT:
                raise RuntimeError(f"Invalid xclbin {args[0]}")
            self._doc = doc

    @bound("xclbin.get_kernels")
    def get_kernels(self):
        k = xclbin.xclbinkernel()
        k._name, k._args = self._doc["kernel"], 3
        return [k]

    @bound("xclbin.get_xsa_name")
    def get_xsa_name(self):
        return self._doc["platform"]

    @bound("xclbin.get_uuid")
    def get_uuid(self):
        return uuid(f"fake-{abs(hash(json.dumps(self._doc, sort_keys=True))):x}")

    @bound("xclbin.get_mems")
    def get_mems(self):
        mems = []
        for i in range(BANKS):
            m = xclbin.xclbinmem()
            m._index = i
            mems.append(m)
        return mems

    @bound("xclbin.get_axlf")
    def get_axlf(self):
        raise RuntimeError("the fake has no axlf")


class _Loaded:
    """An xclbin on the fake card: its NetSpec's simulated kernel and the units' queues."""

    def __init__(self, doc: dict):
        from cosparse.sw.driver.backends.sim import SimBackend
        from cosparse.sw.netspec import load
        self.doc, self.spec = doc, load(doc["netspec"])
        self.sim = SimBackend(self.spec, cache=doc["cache"])
        self.sim.load()
        self.units = [threading.Lock() for _ in range(doc["units"])]

    def bank(self, unit: int) -> int:
        return unit % BANKS  # as cosparse build spreads units: one SLR's bank each


class device:
    _next_address = 1 << 32

    @bound("device.__init__")
    def __init__(self, *args):
        if args and args[0] not in (0, BDF):
            raise RuntimeError(f"No such device '{args[0]}'")
        self._loaded, self._uuid = None, None

    @bound("device.load_xclbin")
    def load_xclbin(self, image):
        image = xclbin(image) if isinstance(image, str) else image
        self._loaded, self._uuid = _Loaded(image._doc), image.get_uuid()
        return self._uuid

    @bound("device.register_xclbin")
    def register_xclbin(self, image):
        raise RuntimeError("the fake card loads xclbins with load_xclbin")

    @bound("device.get_xclbin_uuid")
    def get_xclbin_uuid(self):
        return self._uuid

    @bound("device.get_info")
    def get_info(self, key):
        if key == xrt_info_device.max_clock_frequency_mhz:
            return str(self._loaded.doc["clock_mhz"] if self._loaded else 0)
        if key == xrt_info_device.bdf:
            return BDF
        if key == xrt_info_device.name:
            return "xilinx_u250_gen3x16_xdma_shell_4_1"
        return "NA"

    def _allocate(self, size: int) -> int:
        address = device._next_address
        device._next_address += -(-size // 4096) * 4096 + 4096
        return address


class hw_context:
    @bound("hw_context.__init__")
    def __init__(self, *args):
        self._device, self._uuid = args if args else (None, None)
        if args and self._device._uuid != self._uuid:
            raise RuntimeError("xclbin not loaded on the device")


bo_flags = _enum("bo.flags")


class bo:
    flags = bo_flags

    @bound("bo.__init__")
    def __init__(self, *args):
        if isinstance(args[0], bo):
            raise RuntimeError("the fake makes no sub-buffers")
        owner, size, _flags, group = args
        if owner._loaded is None:
            raise RuntimeError("no xclbin loaded: no memory banks")
        if not 0 <= group < BANKS:
            raise RuntimeError(f"bad memory group {group}")
        self._device, self._size, self.bank = owner, int(size), int(group)
        self._host, self._memory = bytearray(size), bytearray(size)
        self._address = owner._allocate(size)

    @bound("bo.write")
    def write(self, data, seek):
        raw = memoryview(data).cast("B")
        if seek + len(raw) > self._size:
            raise RuntimeError("write past the end of the buffer")
        self._host[seek:seek + len(raw)] = raw

    @bound("bo.read")
    def read(self, size, skip):
        if skip + size > self._size:
            raise RuntimeError("read past the end of the buffer")
        return np.frombuffer(bytes(self._host[skip:skip + size]), np.int8).copy()

    @bound("bo.sync")
    def sync(self, direction, *extent):
        size, offset = extent if extent else (self._size, 0)
        if offset + size > self._size:
            raise RuntimeError("sync past the end of the buffer")
        source, sink = ((self._host, self._memory)
                        if direction == xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE
                        else (self._memory, self._host))
        sink[offset:offset + size] = source[offset:offset + size]

    @bound("bo.map")
    def map(self):
        return memoryview(self._host)

    @bound("bo.size")
    def size(self):
        return self._size

    @bound("bo.address")
    def address(self):
        return self._address


class kernel:
    cu_access_mode = _enum("kernel.cu_access_mode")

    @bound("kernel.__init__")
    def __init__(self, *args):
        if isinstance(args[0], hw_context):
            owner, name = args[0]._device, args[1]
        else:
            owner, handle, name = args[:3]
            if owner._uuid != handle:
                raise RuntimeError("xclbin not loaded on the device")
        loaded = owner._loaded
        base, _, units = name.partition(":")
        if base != loaded.doc["kernel"]:
            raise RuntimeError(f"No such kernel '{base}'")
        if units:
            wanted = units.strip("{}")
            names = [f"{base}_{i + 1}" for i in range(len(loaded.units))]
            if wanted not in names:
                raise RuntimeError(f"No compute units matching '{name}'")
            self._unit = names.index(wanted)
        else:
            self._unit = 0
        self._device, self._loaded = owner, loaded

    @bound("kernel.group_id")
    def group_id(self, index):
        if not 0 <= index < 3:
            raise RuntimeError(f"kernel argument {index} does not exist")
        return self._loaded.bank(self._unit)

    @bound("kernel.__call__")
    def __call__(self, *args):
        r = run(self)
        for i, value in enumerate(args):
            r.set_arg(i, value)
        r.start()
        return r


class run:
    @bound("run.__init__")
    def __init__(self, *args):
        self._kernel = args[0] if args else None
        self._args, self._state, self._done = {}, ert_cmd_state.ERT_CMD_STATE_NEW, None
        self.error = None

    @bound("run.set_arg")
    def set_arg(self, index, value):
        self._args[index] = value

    @bound("run.start")
    def start(self):
        k = self._kernel
        if sorted(self._args) != [0, 1, 2]:
            raise RuntimeError(f"kernel arguments {sorted(self._args)} set, 0-2 needed")
        source, sink, count = self._args[0], self._args[1], self._args[2]
        for buffer in (source, sink):
            if not isinstance(buffer, bo) or buffer.bank != k._loaded.bank(k._unit):
                raise RuntimeError("buffer is not in the memory bank connected to the kernel "
                                   "argument")
        self._state = ert_cmd_state.ERT_CMD_STATE_SUBMITTED
        self._done = threading.Event()
        if k._loaded.doc["never_completes"]:
            return
        threading.Thread(target=self._execute, args=(k, source, sink, count),
                         daemon=True).start()

    def _execute(self, k, source, sink, count):
        loaded = k._loaded
        try:
            with loaded.units[k._unit]:  # one command at a time per compute unit
                layout = loaded.sim.layout
                features = np.frombuffer(bytes(source._memory[:layout.features_bytes(count)]),
                                         np.uint8)
                with _SIMULATOR:
                    out, = loaded.sim.run([(features, count)])
                if len(out.results) > sink._size:
                    raise RuntimeError("the kernel wrote past the end of the results buffer")
                sink._memory[:len(out.results)] = out.results.tobytes()
            self._state = ert_cmd_state.ERT_CMD_STATE_COMPLETED
        except Exception as error:  # noqa: BLE001 - the run's state carries it to the host
            self.error = error
            self._state = ert_cmd_state.ERT_CMD_STATE_ERROR
        finally:
            self._done.set()

    @bound("run.wait")
    def wait(self, *timeout):
        if self._done is None:
            raise RuntimeError("run not started")
        milliseconds = timeout[0] if timeout else 0
        if milliseconds == 0 and self._kernel._loaded.doc["never_completes"]:
            raise AssertionError("run.wait() without a timeout on a kernel that never "
                                 "completes would block forever")
        if not self._done.wait(milliseconds / 1000 if milliseconds else None):
            return ert_cmd_state.ERT_CMD_STATE_TIMEOUT
        return self._state

    @bound("run.state")
    def state(self):
        return self._state

    @bound("run.add_callback")
    def add_callback(self, state, callback, data):
        raise RuntimeError("the fake has no run callbacks")


for _owner, _enum_name in ((bo, "bo.flags"), (kernel, "kernel.cu_access_mode")):
    for _value in surface.ENUMS[_enum_name]:  # export_values(): bo.normal, kernel.shared
        setattr(_owner, _value, getattr(getattr(_owner, _enum_name.split(".")[1]), _value))

xclbinip_vector = list
xclbinkernel_vector = list
xclbinmem_vector = list


def exposed() -> dict:
    """The fake's surface in the listing's terms: {class: methods}, enums, module names."""
    classes = {}
    for qualname, cls in _classes().items():
        classes[qualname] = sorted(name for name, value in vars(cls).items()
                                   if getattr(value, "bound_as", None))
    enums = {"xclBOSyncDirection": xclBOSyncDirection, "ert_cmd_state": ert_cmd_state,
             "xrt_info_device": xrt_info_device, "kernel.cu_access_mode": kernel.cu_access_mode,
             "bo.flags": bo.flags}
    return {"classes": classes,
            "enums": {name: tuple(e.__members__) for name, e in enums.items()},
            "module": sorted(n for n in globals() if not n.startswith("_")
                             and n not in _HELPERS)}


#: Module names that are the double's own helpers, not part of pyxrt's surface.
_HELPERS = {"annotations", "importlib", "json", "threading", "time", "Path", "np", "surface",
            "FORMAT", "BANKS", "BDF", "bound", "write_xclbin", "exposed", "bo_flags"}
