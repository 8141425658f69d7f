#!/usr/bin/env bash
# Install everything cosparse needs on a fresh Debian/Ubuntu machine with Python >= 3.11:
#   Debian packages: espeak-ng + sox (data synthesis), iverilog (second simulator)
#   pip: the CPU build of torch (when no torch is installed), then cosparse itself
#        (editable) with its test extras.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

missing=()
for package in espeak-ng sox iverilog; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: please install ${missing[*]} with your system's package manager" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# torch: a plain `pip install torch` can pull a multi-GB CUDA build; the CPU
# build is all cosparse needs (training uses a GPU when one is there).
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch (CPU build)"
  "$PYTHON" -m pip install -q "torch==2.13.0"
fi

echo "setup: installing cosparse and its dependencies"
"$PYTHON" -m pip install -q -e ".[dev]"
echo "setup: done"
