#!/usr/bin/env bash
# Mutation testing: plants each small bug of tests/mutants/NN-name.patch, one
# at a time, in a scratch copy of this tree (never the checkout itself),
# rebuilds, runs the test suite and reports whether the suite kills it.
#
#   scripts/mutate.sh [-j JOBS] [-t SECONDS] [-w DIR] [-B] [MUTANT...]
#
#   MUTANT   patch names or numbers (03, 03-grad-sin, tests/mutants/03-*.patch);
#            default: every patch in tests/mutants
#   -j JOBS  scratch copies working in parallel (default 1)
#   -t SECS  time limit per mutant for building and testing (default 1800);
#            a mutant that runs past it counts as killed (the suite hung)
#   -w DIR   keep the scratch copies and their builds in DIR and reuse them on
#            the next run (only what changed is rebuilt); default: a fresh
#            temporary folder, removed at the end
#   -B       skip the run of the unmutated suite (by default the first copy
#            runs it first: if it fails, the score means nothing and the
#            script says so and exits 1)
#
# Verdicts: killed (a test failed or the suite timed out), survived (the whole
# suite passed), stale (the patch no longer applies to the current code: fix
# the patch), broken (the mutant does not compile: fix the patch). The score
# is killed / (killed + survived).
#
# A patch may start with comment lines before its diff: `# what: ...` says
# what the bug is, `# tests: test_a test_b` names the test binaries to build
# and run first. Only when those pass is everything else built and run, so a
# killed mutant costs one or two test binaries, not the whole suite; the
# verdict is the same either way.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

jobs=1
limit=1800
work=""
baseline=1
while getopts "j:t:w:Bh" opt; do
  case $opt in
  B) baseline=0 ;;
  j) jobs=$OPTARG ;;
  t) limit=$OPTARG ;;
  w) work=$OPTARG ;;
  *) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

# ---- the mutants to run -----------------------------------------------------
mutants=()
if [ $# -eq 0 ]; then
  for p in tests/mutants/*.patch; do mutants+=("$p"); done
else
  for a in "$@"; do
    if [ -f "$a" ]; then mutants+=("$a"); continue; fi
    m=(tests/mutants/"$a"*.patch)
    if [ ! -f "${m[0]}" ]; then echo "mutate.sh: no mutant '$a' in tests/mutants" >&2; exit 2; fi
    mutants+=("${m[@]}")
  done
fi
[ ${#mutants[@]} -gt 0 ] || { echo "mutate.sh: no mutants" >&2; exit 2; }

keep=1
if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/dflow-mutate.XXXXXX")
  keep=0
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
if [ "$work" = "$root" ]; then echo "mutate.sh: the scratch folder cannot be the checkout" >&2; exit 2; fi
results="$work/results"
rm -rf "$results"
mkdir -p "$results"
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

# The checkout's files: tracked and untracked-but-not-ignored, NUL-separated.
git ls-files -z -co --exclude-standard >"$work/files"

# Makes $1 a copy of the checkout, touching only files whose content differs
# (so that the scratch build recompiles only what a mutant or a change touched).
sync_tree() {
  local dst=$1 f
  mkdir -p "$dst"
  while IFS= read -r -d '' f; do
    [ -f "$root/$f" ] || continue
    if ! cmp -s "$root/$f" "$dst/$f"; then
      mkdir -p "$dst/$(dirname "$f")"
      cp "$root/$f" "$dst/$f"
    fi
  done <"$work/files"
  # files the checkout no longer has (a previous mutant never adds files)
  (cd "$dst" && find . -path ./build -prune -o -type f -print0) | while IFS= read -r -d '' f; do
    f=${f#./}
    [ -e "$root/$f" ] || rm -f "$dst/$f"
  done
}

configure() {
  local src=$1
  [ -f "$src/build/build.ninja" ] && return 0
  # Same code as the normal build (-O2, NDEBUG) without debug info, which
  # only slows compiling and linking; warnings do not stop a mutant.
  nice cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG" -DDFLOW_WERROR=OFF >"$src/../configure.log" 2>&1
}

build() { # src targets...
  local src=$1
  shift
  nice cmake --build "$src/build" -j 2 ${1:+--target "$@"} >>"$src/../build.log" 2>&1
}

run_tests() { # src ctest-args...
  local src=$1
  shift
  OPENBLAS_NUM_THREADS=1 nice ctest --test-dir "$src/build" -j 2 --stop-on-failure \
    --output-on-failure --timeout "$limit" "$@" >>"$src/../test.log" 2>&1
}

# Runs one mutant in scratch copy $1; prints "verdict name: detail".
one_mutant() {
  local dir=$1 patch=$2 src=$1/src name hint regex t0
  name=$(basename "$patch" .patch)
  : >"$dir/build.log"
  : >"$dir/test.log"
  sync_tree "$src"
  if ! (cd "$src" && git apply --check "$root/$patch") >/dev/null 2>&1; then
    echo "stale $name: the patch does not apply to the current code"
    return
  fi
  (cd "$src" && git apply "$root/$patch")
  hint=$(sed -n 's/^# tests: *//p' "$patch" | head -n1)
  t0=$SECONDS
  local deadline=$((SECONDS + limit)) verdict=""
  if [ -n "$hint" ]; then
    # shellcheck disable=SC2086
    if ! timeout "$limit" bash -c 'build "$@"' _ "$src" dflow $hint; then
      verdict="broken $name: does not compile (see $dir/build.log)"
    else
      regex="^($(echo $hint | tr ' ' '|'))\$"
      local left=$((deadline - SECONDS))
      timeout "$left" bash -c 'run_tests "$@"' _ "$src" -R "$regex"
      case $? in
      0) ;;
      124) verdict="killed $name: timed out in $hint" ;;
      *) verdict="killed $name: by $(failed_tests "$dir")" ;;
      esac
    fi
  fi
  if [ -z "$verdict" ]; then
    local left=$((deadline - SECONDS))
    if ! timeout "$left" bash -c 'build "$@"' _ "$src"; then
      verdict="broken $name: does not compile (see $dir/build.log)"
    else
      left=$((deadline - SECONDS))
      local ex=()
      [ -n "$hint" ] && ex=(-E "$regex")
      timeout "$left" bash -c 'run_tests "$@"' _ "$src" "${ex[@]}"
      case $? in
      0) verdict="survived $name: every test passed" ;;
      124) verdict="killed $name: the suite timed out" ;;
      *) verdict="killed $name: by $(failed_tests "$dir")" ;;
      esac
    fi
  fi
  echo "$verdict ($((SECONDS - t0)) s)"
  sync_tree "$src" # undo the mutant
}

export -f build run_tests
export limit

failed_tests() {
  local names
  names=$(sed -n 's/^ *[0-9]*\/[0-9]* Test *#[0-9]*: \([^ ]*\) .*\(Failed\|Exception\|Timeout\|SEGFAULT\|Subprocess aborted\|Child aborted\).*/\1/p' \
    "$1/test.log" | sort -u | tr '\n' ' ')
  echo "${names:-a failing test}"
}

# Worker k runs mutants k, k+jobs, k+2*jobs, ... in its own scratch copy.
worker() {
  local k=$1 dir=$work/w$1 i
  mkdir -p "$dir"
  sync_tree "$dir/src"
  if ! configure "$dir/src" || ! build "$dir/src"; then
    echo "mutate.sh: the unmutated tree does not build in $dir (see build.log)" >&2
    return 1
  fi
  if [ "$k" = 0 ] && [ "$baseline" = 1 ]; then
    # A suite that fails unmutated would "kill" every mutant.
    : >"$dir/test.log"
    if run_tests "$dir/src"; then echo ok >"$results/.baseline"
    else
      cp "$dir/test.log" "$work/baseline.log"
      echo "failing: $(failed_tests "$dir")" >"$results/.baseline"
      echo "mutate.sh: the unmutated suite fails ($(cat "$results/.baseline")); see $work/baseline.log" >&2
    fi
  fi
  for ((i = k; i < ${#mutants[@]}; i += jobs)); do
    one_mutant "$dir" "${mutants[$i]}" | tee "$results/$(basename "${mutants[$i]}" .patch)"
  done
}

echo "mutate.sh: ${#mutants[@]} mutants, $jobs scratch copies in $work"
pids=()
for ((k = 0; k < jobs; k++)); do
  worker "$k" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done

killed=0 survived=0 stale=0 broken=0
for f in "$results"/*; do
  [ -f "$f" ] || continue
  case $(cut -d' ' -f1 "$f") in
  killed) killed=$((killed + 1)) ;;
  survived) survived=$((survived + 1)) ;;
  stale) stale=$((stale + 1)) ;;
  broken) broken=$((broken + 1)) ;;
  esac
done
echo
echo "mutation score: $killed killed of $((killed + survived)) ($survived survived, $stale stale, $broken broken)"
if [ $((killed + survived)) -gt 0 ]; then
  echo "score: $((100 * killed / (killed + survived)))%"
fi
grep -h '^survived' "$results"/* 2>/dev/null | sed 's/^/  /'
if [ -f "$results/.baseline" ] && [ "$(cat "$results/.baseline")" != ok ]; then
  echo "the unmutated suite fails ($(cat "$results/.baseline")): the kills above mean nothing"
  status=1
fi
exit $status
