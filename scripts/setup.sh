#!/usr/bin/env bash
# Installs every system package that building, testing, fuzzing and the
# format check need on a fresh Debian 12 machine, then makes the example data
# available. Idempotent: a second run installs nothing and copies nothing.
# Prints one line per step; the package manager's own output goes to
# .cache/setup.log, whose tail is printed when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
LLVM_VERSION="${LLVM_VERSION:-19}"   # must match -DDFLOW_LLVM_VERSION
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
LOG=.cache/setup.log
mkdir -p .cache

# step "what" command...: one line, the command's output to the log.
step() {
  local what=$1
  shift
  echo "setup: $what"
  { echo "== $what: $*"; } >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    echo "setup: FAILED: $what; the last lines of $LOG:" >&2
    tail -n 25 "$LOG" >&2
    exit 1
  fi
}

# clang and Debian's libclang-rt-dev (libFuzzer, sanitizer runtimes) build
# the fuzz targets (scripts/fuzz.sh); clang-format checks the style;
# librsvg2-bin's rsvg-convert renders dflow plot's SVG in the plot tests.
pkgs=(build-essential cmake ninja-build pkg-config "llvm-${LLVM_VERSION}-dev"
      flex bison libopenblas-dev libcriterion-dev zlib1g-dev python3
      clang libclang-rt-dev clang-format librsvg2-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  : >"$LOG"
  step "updating the package lists" $SUDO apt-get update
  step "installing ${missing[*]}" $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#pkgs[@]} packages are installed"
fi

# Example data: the small real data sets the examples use are vendored in
# data/ with their attribution (data/README.md); none needs fetching yet.
# Larger sets (Fashion-MNIST, graphs, signals) will be fetched here from
# Debian's packages into the git-ignored .cache/ when an example needs them.
echo "setup: checking the vendored example data"
for f in data/mnist10k-images-idx3-ubyte.gz data/mnist10k-labels-idx1-ubyte.gz; do
  [ -f "$f" ] || { echo "setup: missing $f (a broken checkout?)" >&2; exit 1; }
done
