#!/usr/bin/env bash
# Installs what is missing, builds dflow, trains the flagship example (an MLP
# on real MNIST digits) and prints its results, then builds the same program
# into a standalone executable (dflow build) and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"
out=runs/mnist_mlp
echo "== dflow run examples/mnist_mlp.dfl --out $out"
build/dflow run examples/mnist_mlp.dfl --out "$out"
echo "== $out/metrics.csv (rows with the held-out accuracy; the file also has the loss curve)"
awk -F, 'NR == 1 || $2 != "" { printf "%-8s %-14s %-14s %s\n", $1, $2, $3, $4 }' "$out/metrics.csv"
echo "== $out/summary.json"
cat "$out/summary.json"
echo
echo "== dflow build examples/mnist_mlp.dfl -o $out/mnist_mlp   (a standalone executable: no LLVM inside)"
build/dflow build examples/mnist_mlp.dfl -o "$out/mnist_mlp"
echo "== $out/mnist_mlp --set lr=0.05 --out $out/built   (lr is read at run time)"
"$out/mnist_mlp" --set lr=0.05 --out "$out/built" | tail -2
echo "== dflow plot $out -y loss -o $out/loss.svg   (the loss curve as SVG: open it in a browser)"
build/dflow plot "$out" -y loss --logy --title "examples/mnist_mlp.dfl" -o "$out/loss.svg"
echo "wrote $out/loss.svg"
