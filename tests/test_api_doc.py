"""docs/api.md: the example runs as written, and ``import cosparse`` stays light."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "sim"))
from _sim_util import needs_verilator  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _example() -> str:
    (code,) = re.findall(r"^## Example\n.*?```python\n(.*?)```", DOC.read_text(), re.S | re.M)
    return code


@pytest.mark.slow
@needs_verilator
def test_the_documented_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), str(DOC), "exec"), {"__name__": "api_example"})
    assert (tmp_path / "out" / "tiny-hw" / "cosparse_top.v").is_file()
    assert (tmp_path / "out" / "tiny-hw" / "hw_config.json").is_file()
    assert (tmp_path / "out" / "tiny-netspec" / "netspec.json").is_file()


def test_import_cosparse_loads_neither_torch_nor_amaranth():
    code = ("import sys, cosparse; heavy = [m for m in ('torch', 'amaranth') if m in "
            "sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_documented_function_is_exported():
    import cosparse
    documented = set(re.findall(r"`cosparse\.(\w+)\(", DOC.read_text()))
    assert documented <= set(cosparse.__all__), documented - set(cosparse.__all__)
    assert all(callable(getattr(cosparse, name)) for name in cosparse.__all__)
