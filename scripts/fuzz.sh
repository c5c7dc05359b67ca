#!/usr/bin/env bash
# Fuzzing with libFuzzer (clang), under ASan+UBSan.
#
#   scripts/fuzz.sh TARGET SECONDS [LIBFUZZER_FLAG...]
#       Fuzzes one target (frontend npy csv idx gzip image) for SECONDS,
#       growing its working corpus build-fuzz/corpus/TARGET from the seeds.
#       Crashes are saved as build-fuzz/crashes/TARGET-crash-*; exit 1 then.
#   scripts/fuzz.sh check [SECONDS]
#       What scripts/test.sh runs: every target replays its seeds (the
#       committed corpus, crash regressions included), then fuzzes SECONDS
#       (default 10) from them with a fixed seed (-seed=1).
#   scripts/fuzz.sh list
#   FUZZ_INSTANCE=2 scripts/fuzz.sh TARGET SECONDS: a second process on the
#       same working corpus, with its own log (fuzz-TARGET-2.log).
#
# Builds build-fuzz/ (CC=clang, -DDFLOW_FUZZ=ON) when needed. Seeds of a
# target: tests/fuzz/corpus/TARGET/ plus, for frontend, the programs of
# examples/, std/, tests/errors/ and tests/programs/, and for image, the
# program images of tests/fuzz/corpus/frontend/*.dfl and examples/*.dfl
# written by fuzz_image_seeds. Each run ends with one summary line:
#   fuzz TARGET: EXECS execs in SECS s (EXECS/s), cov N, ft N, corpus N, crashes N
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(frontend npy csv idx gzip image)
BUILD="$PWD/build-fuzz" # absolute: fuzz_frontend works in its own folder
LLVM_VERSION="${LLVM_VERSION:-19}"

die() { echo "fuzz: $*" >&2; exit 1; }

build() {
  command -v clang >/dev/null || die "clang is not installed (scripts/setup.sh installs it)"
  if [ ! -f "$BUILD/build.ninja" ]; then
    echo "fuzz: configuring $BUILD (clang, DFLOW_FUZZ=ON)"
    mkdir -p "$BUILD"
    CC=clang cmake -S . -B "$BUILD" -G Ninja -DDFLOW_FUZZ=ON -DDFLOW_WERROR=ON \
      -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1 ||
      { tail -20 "$BUILD/configure.log" >&2; die "configuring $BUILD failed (log: $BUILD/configure.log)"; }
  fi
  cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target "$@" >"$BUILD/build.log" 2>&1 ||
    { tail -30 "$BUILD/build.log" >&2; die "building $* failed (log: $BUILD/build.log)"; }
}

# seeds TARGET DIR: fills DIR afresh with the target's seeds.
seeds() {
  local t=$1 dir=$2
  rm -rf "$dir"
  mkdir -p "$dir"
  [ -d "tests/fuzz/corpus/$t" ] && cp tests/fuzz/corpus/"$t"/* "$dir"/ 2>/dev/null || true
  case $t in
  frontend)
    for d in examples std tests/errors tests/programs; do
      for f in "$d"/*.dfl; do [ -f "$f" ] && cp "$f" "$dir/${d//\//_}_$(basename "$f")"; done
    done ;;
  image)
    "$BUILD/tests/fuzz/fuzz_image_seeds" "$dir" tests/fuzz/corpus/frontend/*.dfl examples/*.dfl \
      >"$BUILD/image_seeds.log" 2>&1 ||
      { tail -20 "$BUILD/image_seeds.log" >&2; die "no image seeds (log: $BUILD/image_seeds.log)"; } ;;
  esac
}

# Our own options, not the caller's (scripts/test.sh exports handle_segv=0).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:handle_abort=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OPENBLAS_NUM_THREADS=1
sym="/usr/lib/llvm-${LLVM_VERSION}/bin/llvm-symbolizer"
[ -x "$sym" ] && export ASAN_SYMBOLIZER_PATH="$sym"

# run TARGET LOG FLAG... CORPUS_DIR...: runs the target; prints the summary line.
run() {
  local t=$1 log=$2 rc=0
  shift 2
  mkdir -p "$BUILD/crashes"
  "$BUILD/tests/fuzz/fuzz_$t" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$BUILD/crashes/$t-" "$@" >"$log" 2>&1 || rc=$?
  local execs secs cov ft corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  local crashes=0
  [ "$rc" = 0 ] || crashes=1
  # -fork=N mode (with -ignore_timeouts=1 -ignore_ooms=1, say) reports differently
  local fork
  fork=$(grep -E '^#[0-9]+: cov: ' "$log" | tail -1 || true)
  if [ -n "$fork" ]; then
    execs=$(echo "$fork" | sed 's/^#\([0-9]*\):.*/\1/')
    secs=$(echo "$fork" | sed -n 's/.* time: \([0-9]*\)s.*/\1/p')
    corp=$(echo "$fork" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    crashes=$(echo "$fork" | sed -n 's/.*oom\/timeout\/crash: \([0-9\/]*\).*/\1 (oom\/timeout\/crash)/p')
  fi
  echo "fuzz $t: ${execs:-?} execs in ${secs:-?} s ($(( ${execs:-0} / (${secs:-0} > 0 ? ${secs:-1} : 1) ))/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, crashes $crashes"
  if [ "$rc" != 0 ]; then
    grep -E "ERROR|SUMMARY|contract broken|Test unit written|runtime error" "$log" | head -8 >&2 || true
    echo "fuzz $t: FAILED (exit $rc; log: $log)" >&2
    return 1
  fi
}

case "${1:-}" in
list) printf '%s\n' "${TARGETS[@]}" ;;
check)
  secs="${2:-10}"
  build fuzz_all
  fail=0
  for t in "${TARGETS[@]}"; do
    s="$BUILD/check/seeds-$t" work="$BUILD/check/corpus-$t"
    seeds "$t" "$s"
    rm -rf "$work" && mkdir -p "$work"
    run "$t" "$BUILD/check-$t-replay.log" -runs=0 "$s" || fail=1
    run "$t" "$BUILD/check-$t.log" -seed=1 -max_total_time="$secs" "$work" "$s" || fail=1
  done
  [ "$fail" = 0 ] || die "a fuzz target failed (inputs in $BUILD/crashes/)"
  ;;
"" | -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; [ -n "${1:-}" ] ;;
*)
  t=$1 secs=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
  shift 2
  case " ${TARGETS[*]} " in *" $t "*) ;; *) die "unknown target '$t' (one of: ${TARGETS[*]})" ;; esac
  if [ "$t" = image ]; then build "fuzz_$t" fuzz_image_seeds; else build "fuzz_$t"; fi
  # FUZZ_INSTANCE=2: a second process on the same corpus (its own log and seeds)
  inst=${FUZZ_INSTANCE:+-$FUZZ_INSTANCE}
  s="$BUILD/seeds/$t$inst"
  seeds "$t" "$s"
  mkdir -p "$BUILD/corpus/$t"
  run "$t" "$BUILD/fuzz-$t$inst.log" -max_total_time="$secs" "$@" "$BUILD/corpus/$t" "$s"
  ;;
esac
