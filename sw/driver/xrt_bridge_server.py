"""The pyxrt side of the process bridge: run by the Python XRT was built for (3.8 and up).

XRT's pyxrt is compiled for the distribution's own Python (3.8 on Ubuntu
20.04, 3.10 on 22.04); cosparse needs 3.11 or later. The xrt backend can
therefore drive pyxrt in a second process: this file, run by the system
Python that imports pyxrt, with nothing but the standard library and
pyxrt, answers requests on stdin with replies on stdout, one JSON object a
line. It keeps every object pyxrt returns in a table and hands out its
number; the client (:mod:`cosparse.sw.driver.bridge`) calls methods on
those numbers. So it needs no knowledge of the kernel and adds no API of
its own: every call is a pyxrt call.

Request: ``{"op": "has" | "get" | "call" | "method" | "eq", ...}`` with
arguments encoded as ``{"value": v}``, ``{"bytes": base64}``,
``{"handle": n}`` or ``{"path": "bo.normal"}`` (a pyxrt attribute); reply:
``{"result": ...}`` in the same encoding (lists as ``{"list": [...]}``) or
``{"error": type, "message": text}``.

Kept to Python 3.8's syntax and standard library: do not modernise.
"""

import base64
import json
import os
import sys

import pyxrt

_objects = {}


def _keep(obj):
    number = len(_objects) + 1
    _objects[number] = obj
    return number


def _resolve(path):
    obj = pyxrt
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _decode(arg):
    if "value" in arg:
        return arg["value"]
    if "bytes" in arg:
        return bytearray(base64.b64decode(arg["bytes"]))
    if "handle" in arg:
        return _objects[arg["handle"]]
    return _resolve(arg["path"])


def _encode(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if hasattr(value, "tobytes") and hasattr(value, "dtype"):  # pyxrt's bo.read: an array
        return {"bytes": base64.b64encode(value.tobytes()).decode("ascii")}
    if isinstance(value, (list, tuple)) or type(value).__name__.endswith("_vector"):
        return {"list": [_encode(item) for item in value]}
    return {"handle": _keep(value), "repr": str(value)}


def _answer(request):
    op = request["op"]
    args = [_decode(a) for a in request.get("args", [])]
    if op == "has":
        try:
            _resolve(request["path"])
        except AttributeError:
            return False
        return True
    if op == "get":
        return _resolve(request["path"])
    if op == "call":
        return _resolve(request["path"])(*args)
    if op == "method":
        target = _objects[request["handle"]]
        name = request["name"]
        return target(*args) if name == "__call__" else getattr(target, name)(*args)
    if op == "eq":
        return args[0] == args[1]
    raise ValueError("unknown request " + repr(op))


def main():
    # The replies get the original stdout to themselves; anything else printed, by Python
    # code or by XRT's C++ on file descriptor 1, goes to stderr instead of into the protocol.
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    channel.write(json.dumps({"hello": "cosparse-xrt-bridge",
                              "python": list(sys.version_info[:3])}) + "\n")
    channel.flush()
    for line in sys.stdin:
        try:
            reply = {"result": _encode(_answer(json.loads(line)))}
        except Exception as error:  # every failure goes back to the client, named
            reply = {"error": type(error).__name__, "message": str(error)}
        channel.write(json.dumps(reply) + "\n")
        channel.flush()


if __name__ == "__main__":
    main()
