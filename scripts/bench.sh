#!/usr/bin/env bash
# Runs every benchmark of bench/ and prints ONE table: dflow beside its
# anchors (PyTorch eager, torch.compile, JAX jit, OpenBLAS GEMMs alone, a
# STREAM triad), each at 1 and 2 threads, medians of repeated steps after
# warm-up, with the ratios that issue 3's targets name (bench/README.md).
#
# It builds dflow (Release, in build-bench/) when needed and keeps a virtual
# environment with current PyTorch, JAX (CPU) and numpy from PyPI OUTSIDE the
# repository (default ${XDG_CACHE_HOME:-$HOME/.cache}/dflow-bench-venv; the
# first install downloads ~3.5 GB, torch's CUDA wheels included, and takes a
# few minutes). Nothing here is needed by the build or the tests.
#
# usage: scripts/bench.sh [--quick] [--rounds N] [--no-anchors] [--threads "1 2"]
#                         [--out DIR] [--update-readme] [--upgrade] [--latency-only]
#   --quick          one round instead of three, fewer steps (~1/4 the time)
#   --rounds N       measure everything N times, interleaved (default 3)
#   --no-anchors     skip the Python anchors (no venv needed)
#   --out DIR        results, logs and table.md (default runs/bench-DATE)
#   --update-readme  replace the latest table in bench/README.md
#   --upgrade        reinstall the venv's packages at their newest versions
#   --latency-only   only the compile-latency table (bench/latency.py): every
#                    example and a generated 1000-kernel program, cold and
#                    warm compile cache against the interpreter
# env: DFLOW_BENCH_VENV (the venv's folder), PYTHON (the python that makes it),
#      DFLOW_BENCH_BASELINE (an older dflow binary for the latency table)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0 anchors=1 threads="1 2" out="" update_readme=0 upgrade=0 rounds_opt="" latency_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-anchors) anchors=0 ;;
    --threads) threads="$2"; shift ;;
    --rounds) rounds_opt="$2"; shift ;;
    --out) out="$2"; shift ;;
    --update-readme) update_readme=1 ;;
    --upgrade) upgrade=1 ;;
    --latency-only) latency_only=1 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\n== %s\n' "$*" >&2; }
build="build-bench"
out=${out:-runs/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs" "$out/work"
out=$(cd "$out" && pwd)
work=$out/work logs=$out/logs res=$out/results.txt
: > "$res"
put() { echo "$1 $2" >> "$res"; echo "   $1 = $2" >&2; }
trap 'rm -f "$work"/*.npy' EXIT

# ------------------------------------------------------------------ builds
say "building dflow (Release, $build/)"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > "$logs/cmake.log"
fi
ninja -C "$build" dflow > "$logs/ninja.log" || { tail -30 "$logs/ninja.log" >&2; exit 1; }
dflow=$root/$build/dflow
cc=${CC:-cc}
$cc -O2 -fopenmp bench/gemm_mlp.c -o "$work/gemm_mlp" -lopenblas -lm
$cc -O2 -fopenmp bench/triad.c -o "$work/triad"
run_help=$("$dflow" run --help 2>&1 || true)

# Compile latency: cold and warm compile cache against the interpreter, for
# every example and a generated program of ~1000 kernels (medians of 5 runs;
# 3 with --quick). Its own table, latency.md; --update-readme puts it into
# bench/README.md between the latency-table markers.
latency() {
  say "compile latency (bench/latency.py)"
  python3 bench/gen_many_kernels.py > "$work/many_kernels.dfl"
  local base=() reps=5
  [ -n "${DFLOW_BENCH_BASELINE:-}" ] && base=(--baseline "$DFLOW_BENCH_BASELINE")
  [ $quick = 1 ] && reps=3
  python3 bench/latency.py --dflow "$dflow" "${base[@]}" --reps $reps --out "$out/latency.md" \
    examples/*.dfl "$work/many_kernels.dfl" 2> "$logs/latency.log"
  if [ $update_readme = 1 ]; then
    python3 - bench/README.md "$out/latency.md" <<'PY'
import sys
readme, table = sys.argv[1], open(sys.argv[2]).read()
text = open(readme).read()
b, e = "<!-- latency-table:begin -->", "<!-- latency-table:end -->"
i, j = text.index(b) + len(b), text.index(e)
open(readme, "w").write(text[:i] + "\n" + table + text[j:])
PY
    echo "bench/README.md: latency table replaced" >&2
  fi
}
if [ $latency_only = 1 ]; then
  latency
  exit 0
fi
has() { case "$run_help" in *"$1"*) return 0 ;; esac; return 1; }

# -------------------------------------------------------------------- venv
venv=${DFLOW_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dflow-bench-venv}
py=""
if [ $anchors = 1 ]; then
  if [ ! -f "$venv/.dflow-bench-ok" ] || [ $upgrade = 1 ]; then
    say "installing PyTorch, JAX (CPU) and numpy from PyPI into $venv"
    # torch's Linux x86-64 wheel on PyPI is the CUDA build and pulls ~3 GB of
    # nvidia-* wheels; without them `import torch` fails (libtorch_cuda.so is
    # linked to them), and CPU-only wheels are not on PyPI, so we take the
    # whole thing once and cache it. It runs on the CPU without a GPU.
    rm -f "$venv/.dflow-bench-ok"
    "${PYTHON:-python3}" -m venv "$venv"
    if "$venv/bin/pip" install --upgrade torch jax numpy > "$logs/pip.log" 2>&1 &&
       "$venv/bin/python" -c 'import torch, jax, numpy' 2>> "$logs/pip.log"; then
      date > "$venv/.dflow-bench-ok"
    else
      tail -20 "$logs/pip.log" >&2
      echo "bench.sh: the anchors' venv could not be set up; continuing without them" >&2
    fi
  fi
  [ -f "$venv/.dflow-bench-ok" ] && py=$venv/bin/python
fi
if [ -n "$py" ]; then
  "$py" -c 'import torch, jax, numpy, platform
print("# anchors: python", platform.python_version(), "torch", torch.__version__,
      "jax", jax.__version__, "numpy", numpy.__version__)' >> "$res"
fi

# ---------------------------------------------------------------- settings
rounds=3 mlp_steps=3000 interp_steps=300 anchor_steps=400 gemm_steps=400 triad_reps=10 rows=6
if [ $quick = 1 ]; then
  rounds=1 mlp_steps=1000 interp_steps=100 anchor_steps=200 gemm_steps=200 triad_reps=5 rows=4
fi
rounds=${rounds_opt:-$rounds}
{
  echo "# date $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "# cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)$(grep -q avx512f /proc/cpuinfo && echo ', AVX-512'), $(free -g | awk '/^Mem/ { print $2 }') GiB"
  echo "# threads $threads; $rounds round(s); MLP $mlp_steps dflow steps, $anchor_steps anchor steps"
  echo "# load-at-start $(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
  echo "# dflow $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?') (+ working tree)"
} >> "$res"
bl() { python3 bench/benchlib.py "$@"; }
say "writing inputs (64M floats for the chain, 4096x4096 for softmax)"
bl npy "$work/ew_input.npy" 67108864
bl npy "$work/softmax_input.npy" 4096 4096

# Environment for one thread count. A 1-thread figure is a 1-core figure:
# every process is pinned to CPU 0 (taskset), because thread settings alone
# do not hold every runtime to one core (JAX dispatches asynchronously and
# used ~1.6 cores with its 1-thread flags). At 2 threads nothing is pinned.
# Anchors: PyTorch with OpenBLAS at 1 thread (anchors.md), JAX through XLA's
# flags. The venv's Python runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE,
# which slow a current numpy's OpenBLAS.
pin() {
  if [ "$1" = 1 ] && command -v taskset > /dev/null; then echo "taskset -c 0"; fi
}
dflow_env() { $(pin "$1") env OMP_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1 DFLOW_NUM_THREADS=$1 "${@:2}"; }
py_env() {
  local t=$1 xla
  if [ "$t" = 1 ]; then xla="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
  else xla="--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=$t"; fi
  $(pin "$t") env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t \
      OPENBLAS_NUM_THREADS=1 XLA_FLAGS="$xla" "${@:2}"
}
# Waits until the rest of the machine is nearly idle: the share of non-idle
# CPU time over half a second, read from /proc/stat while this script sleeps,
# must fall below 20%. Other builds and tests share this machine, and a
# measurement taken while they burst says little. At most ~10 s per call and
# 120 s per run, so the whole script stays within its time.
wait_left=240  # half-second samples
quiet() {
  local busy total
  for _ in $(seq 1 20); do
    [ $wait_left -le 0 ] && break
    read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ < /proc/stat; sleep 0.5
    read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ < /proc/stat
    wait_left=$((wait_left - 1))
    busy=$(( (b1 + b2 + b3 + b6 + b7 + b8) - (a1 + a2 + a3 + a6 + a7 + a8) ))
    total=$(( busy + (b4 + b5) - (a4 + a5) ))
    if [ $total -gt 0 ] && [ $((100 * busy / total)) -lt 20 ]; then
      echo "# quiet-before $1" >> "$res"; return 0
    fi
  done
  echo "   (the machine is busy: measuring anyway)" >&2
  echo "# busy-before $1" >> "$res"
}
kv() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

# A dflow run; on failure the log is shown and the figure left out.
dflow_run() {
  local t=$1 log=$2; shift 2
  if ! dflow_env "$t" "$dflow" run "$@" --no-progress > "$log" 2>&1; then
    echo "   dflow failed (see $log):" >&2; tail -5 "$log" >&2; return 1
  fi
}

# Every figure is measured in each of $rounds rounds, the implementations
# interleaved within a round, each after quiet(), and the table shows the
# median over rounds (with the range): this machine is shared and a
# neighbour's burst can spoil one 2-thread measurement several times over.
for round in $(seq 1 $rounds); do
  for t in $threads; do
    say "round $round of $rounds, $t thread(s)"
    r=r$round
    # the machine's limits, measured in this run
    quiet "triad.$t.$r"
    $(pin "$t") env OMP_NUM_THREADS=$t "$work/triad" "$t" 67108864 $triad_reps > "$logs/triad.$t.$r.log"
    put "triad_gbs.$t.$r" "$(kv triad_gbs "$logs/triad.$t.$r.log")"
    put "triad_ms.$t.$r" "$(kv triad_ms "$logs/triad.$t.$r.log")"
    quiet "gemm.$t.$r"
    $(pin "$t") env OPENBLAS_NUM_THREADS=$t "$work/gemm_mlp" "$t" $gemm_steps > "$logs/gemm.$t.$r.log"
    put "mlp_ms.gemm.$t.$r" "$(kv gemm_mlp_ms "$logs/gemm.$t.$r.log")"
    if [ "$t" != 1 ]; then
      put "gemm_blas_threads_ms.$t.$r" "$(kv gemm_mlp_blas_threads_ms "$logs/gemm.$t.$r.log")"
      put "gemm_split_ms.$t.$r" "$(kv gemm_mlp_split_ms "$logs/gemm.$t.$r.log")"
    fi
    put "sgemm1024_gflops.$t.$r" "$(kv sgemm1024_gflops "$logs/gemm.$t.$r.log")"

    # MLP step: dflow
    d=$work/mlp_cpu.$t.$r
    quiet "mlp_cpu.$t.$r"
    if dflow_run "$t" "$logs/mlp_cpu.$t.$r.log" bench/mlp_sgd.dfl --backend cpu --set steps=$mlp_steps --out "$d"; then
      put "mlp_ms.dflow_cpu.$t.$r" "$(bl train-step "$d/metrics.csv")"
    fi
    if [ "$t" = 1 ] && [ $round = 1 ]; then
      d=$work/mlp_interp
      quiet mlp_interp
      if dflow_run 1 "$logs/mlp_interp.log" bench/mlp_sgd.dfl --backend interp --set steps=$interp_steps --out "$d"; then
        put "mlp_ms.dflow_interp.1" "$(bl train-step "$d/metrics.csv")"
      fi
    fi
    # MLP step: the anchors, one process per implementation and thread count
    if [ -n "$py" ]; then
      for impl in torch_eager torch_compile jax_jit; do
        quiet "$impl.$t.$r"
        if py_env "$t" "$py" bench/anchors_mlp.py $impl "$t" $anchor_steps > "$logs/$impl.$t.$r.log" 2>&1; then
          put "mlp_ms.$impl.$t.$r" "$(kv mlp_ms "$logs/$impl.$t.$r.log")"
        else
          echo "   $impl failed (see $logs/$impl.$t.$r.log)" >&2
        fi
      done
    fi

    # bandwidth-bound kernels: bytes = one read + one write per element
    for prog in ew_chain ew_tanh; do
      d=$work/$prog.$t.$r
      quiet "$prog.$t.$r"
      if dflow_run "$t" "$logs/$prog.$t.$r.log" bench/$prog.dfl --backend cpu --set "path=$work/ew_input.npy" \
           --set rows=$rows --set inner=2 --out "$d"; then
        ms=$(bl main-iter "$d/metrics.csv" 2)
        put "${prog}_ms.dflow_cpu.$t.$r" "$ms"
        put "${prog}_gbs.dflow_cpu.$t.$r" "$(awk -v ms="$ms" 'BEGIN { printf "%.2f", 2 * 4 * 67108864 / (ms * 1e6) }')"
      fi
    done
    d=$work/softmax.$t.$r
    quiet "softmax.$t.$r"
    if dflow_run "$t" "$logs/softmax.$t.$r.log" bench/softmax_rows.dfl --backend cpu \
         --set "path=$work/softmax_input.npy" --set rows=$rows --set inner=8 --out "$d"; then
      ms=$(bl main-iter "$d/metrics.csv" 8)
      put "softmax_ms.dflow_cpu.$t.$r" "$ms"
      put "softmax_gbs.dflow_cpu.$t.$r" "$(awk -v ms="$ms" 'BEGIN { printf "%.2f", 2 * 4 * 4096 * 4096 / (ms * 1e6) }')"
    fi
  done
  # JIT compile time of mnist_mlp (2 threads): the sum of the compile times
  # that --verbose reports, and as a check the wall time of a 2-step run
  # (step 1 is interpreted, then the step graph compiles) minus the same
  # run on the interpreter
  say "round $round of $rounds: compile time of examples/mnist_mlp.dfl"
  quiet "compile.$r"
  t0=$(date +%s.%N)
  if dflow_run 2 "$logs/mnist_cpu_2steps.$r.log" examples/mnist_mlp.dfl --backend cpu --verbose --set steps=2; then
    t1=$(date +%s.%N)
    if dflow_run 2 "$logs/mnist_interp_2steps.$r.log" examples/mnist_mlp.dfl --backend interp --set steps=2; then
      t2=$(date +%s.%N)
      put "compile_ms.mnist_mlp.$r" "$(bl compile-ms "$logs/mnist_cpu_2steps.$r.log")"
      put "compile_wall_ms.mnist_mlp.$r" \
        "$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.0f", ((b - a) - (c - b)) * 1e3 }')"
    fi
  fi
done

# --------------------------------------------------------------------- RSS
say "peak RSS of examples/mnist_mlp.dfl"
# 500 steps: one pass of the `every 500` test-set evaluation is included
mem=(); has "--mem-report" && mem=(--mem-report)
for be in cpu interp; do
  extra=(); [ $be = cpu ] && extra=("${mem[@]}")
  dflow_env 2 /usr/bin/time -v "$dflow" run examples/mnist_mlp.dfl --backend $be --set steps=500 --no-progress \
    "${extra[@]}" > "$logs/rss_$be.log" 2>&1 && put "rss_mb.dflow_run_$be" "$(bl rss "$logs/rss_$be.log")"
done
[ ${#mem[@]} -gt 0 ] && put "planned_mb.mnist_mlp" "$(bl planned-mb "$logs/rss_cpu.log")"
if "$dflow" build --help > /dev/null 2>&1; then
  # steps decides the host program: it is fixed when the executable is built
  if "$dflow" build examples/mnist_mlp.dfl --set steps=500 -o "$work/mnist_mlp" > "$logs/build.log" 2>&1; then
    dflow_env 2 /usr/bin/time -v "$work/mnist_mlp" --no-progress > "$logs/rss_built.log" 2>&1 &&
      put "rss_mb.dflow_built" "$(bl rss "$logs/rss_built.log")"
  fi
fi
if [ -n "$py" ]; then
  py_env 1 /usr/bin/time -v "$py" -c 'import torch' > "$logs/rss_torch.log" 2>&1 &&
    put "rss_mb.import_torch" "$(bl rss "$logs/rss_torch.log")"
fi
echo "# load-at-end $(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')" >> "$res"

latency

# ------------------------------------------------------------------ table
say "results ($out)"
echo
bl header "$res"
echo
bl table "$res" "$out/table.md"
echo
echo "Compile latency"
echo
cat "$out/latency.md"
if [ $update_readme = 1 ]; then
  bl readme bench/README.md "$res" "$out/table.md"
  echo "bench/README.md: latest table replaced" >&2
fi
