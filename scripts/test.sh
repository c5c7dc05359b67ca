#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test.
# Exits non-zero on any failure. DFLOW_SANITIZE=1 builds the same suite with
# ASan+UBSan in its own build folder, then runs the fuzz check
# (scripts/fuzz.sh check: every libFuzzer target replays its corpus and fuzzes
# DFLOW_FUZZ_SECONDS, default 10, with a fixed seed; skipped, loudly, only
# when clang is not installed). First it checks that every C file matches
# .clang-format (scripts/format.sh --check; DFLOW_FORMAT_CHECK=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${DFLOW_FORMAT_CHECK:-1}" = 1 ]; then
  scripts/format.sh --check
fi
jobs=$(nproc 2>/dev/null || echo 2)
if [ "${DFLOW_SANITIZE:-0}" = 1 ]; then
  build=build-asan
  flags=(-DDFLOW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  export ASAN_OPTIONS="detect_leaks=1:handle_segv=0:abort_on_error=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
else
  build=build
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake -S . -B "$build" -G Ninja -DDFLOW_WERROR=ON "${flags[@]}"
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" -j "$jobs" --output-on-failure --timeout 1200
if [ "${DFLOW_SANITIZE:-0}" = 1 ]; then
  if command -v clang >/dev/null; then
    scripts/fuzz.sh check "${DFLOW_FUZZ_SECONDS:-10}"
  else
    echo "test: WARNING: fuzz check SKIPPED: clang is not installed (scripts/setup.sh installs it)" >&2
  fi
fi
