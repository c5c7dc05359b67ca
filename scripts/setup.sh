#!/usr/bin/env bash
# Installs every system package that building, testing and the examples need on a
# fresh Debian 12 machine, then makes the example data available. Idempotent:
# a second run installs nothing and copies nothing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
LLVM_VERSION="${LLVM_VERSION:-19}"   # must match -DDFLOW_LLVM_VERSION
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

pkgs=(build-essential cmake ninja-build pkg-config "llvm-${LLVM_VERSION}-dev"
      flex bison libopenblas-dev libcriterion-dev zlib1g-dev python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Example data: the small real data sets the examples use are vendored in
# data/ with their attribution (data/README.md); none needs fetching yet.
# Larger sets (Fashion-MNIST, graphs, signals) will be fetched here from
# Debian's packages into the git-ignored .cache/ when an example needs them.
for f in data/mnist10k-images-idx3-ubyte.gz data/mnist10k-labels-idx1-ubyte.gz; do
  [ -f "$(dirname "$0")/../$f" ] || { echo "setup: missing $f (a broken checkout?)" >&2; exit 1; }
done
