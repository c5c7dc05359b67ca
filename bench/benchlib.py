"""Helpers for scripts/bench.sh, standard library only (runs without the venv).

  benchlib.py npy OUT ROWS [COLS]     write a float32 .npy of a fixed pattern
                                      in [-2, 2) (contents do not matter to
                                      the bandwidth benchmarks)
  benchlib.py train-step CSV          median ms per training step, from a
                                      dflow metrics.csv (see below)
  benchlib.py main-iter CSV INNER     median ms per inner iteration, from the
                                      rows a `main` loop logged
  benchlib.py rss TIME_V_OUTPUT       peak RSS in MB from /usr/bin/time -v
  benchlib.py compile-ms VERBOSE_LOG  sum of "compiled in X ms" lines
  benchlib.py planned-mb LOG          the "planned total" of --mem-report, MiB
  benchlib.py table RESULTS [MD]      print the side-by-side table (and write
                                      it as markdown to MD)
  benchlib.py header RESULTS          the run's header lines (date, machine,
                                      load, how often the machine was busy)
  benchlib.py readme README RESULTS MD  replace the text between the
                                      bench-table markers of README with the
                                      run's header lines and table MD

Step times from metrics.csv: the training loop records (step, loss, time_s)
about 200 times per run, time_s in milliseconds' resolution since start-up.
Consecutive rows are merged into windows of at least 0.1 s (so the
resolution costs < 1%), the first 20% of steps (JIT, first interpreted
run, caches) are dropped, and the median of the windows' ms-per-step is the
figure: a median over repeated steps, each window's mean standing for the
steps inside it.
"""
import array
import csv
import re
import statistics
import struct
import sys


def write_npy(path, rows, cols):
    shape = (rows,) if cols == 0 else (rows, cols)
    n = rows * (cols or 1)
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % dims
    hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
    base = array.array("f", [((i * 2654435761) % 4096) / 1024.0 - 2.0 for i in range(4096)])
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        full, rest = divmod(n, len(base))
        chunk = base * 256
        for _ in range(full // 256):
            chunk.tofile(f)
        (base * (full % 256)).tofile(f)
        base[:rest].tofile(f)


def read_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [(int(r["step"]), float(r["time_s"])) for r in rows if r.get("time_s")]


def train_step_ms(path):
    rows = read_rows(path)
    if len(rows) < 3:
        raise SystemExit(f"{path}: too few rows")
    last = rows[-1][0]
    rows = [r for r in rows if r[0] >= 0.2 * last]
    per_step, (s0, t0) = [], rows[0]
    for s, t in rows[1:]:
        if t - t0 >= 0.1 and s > s0:
            per_step.append((t - t0) / (s - s0) * 1e3)
            s0, t0 = s, t
    if not per_step:  # a very fast run: one window over everything kept
        per_step = [(rows[-1][1] - rows[0][1]) / max(1, rows[-1][0] - rows[0][0]) * 1e3]
    return statistics.median(per_step)


def main_iter_ms(path, inner, skip=2):
    rows = read_rows(path)
    d = [(rows[i][1] - rows[i - 1][1]) / inner * 1e3 for i in range(1 + skip, len(rows))]
    if not d:
        raise SystemExit(f"{path}: too few rows")
    return statistics.median(d)


def rss_mb(path):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
    if not m:
        raise SystemExit(f"{path}: no RSS line")
    return int(m.group(1)) / 1024.0


def planned_mb(path):
    m = re.findall(r"planned total ([0-9.]+) ([KMG]?i?B)", open(path).read())
    if not m:
        raise SystemExit(f"{path}: no 'planned total' line")
    v, unit = m[-1]
    return float(v) * {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, float("nan"))


def compile_ms(path):
    return sum(float(x) for x in re.findall(r"compiled in ([0-9.]+) ms", open(path).read()))


# ---------------------------------------------------------------- the table

def load(path):
    """key -> list of values; KEY.rN lines (round N) are gathered under KEY."""
    r = {}
    for line in open(path):
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            try:
                v = float(parts[1])
            except ValueError:
                continue
            r.setdefault(re.sub(r"\.r\d+$", "", parts[0]), []).append(v)
    return r


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if v >= 100:
        return f"{v:.0f}{unit}"
    if v >= 10:
        return f"{v:.1f}{unit}"
    return f"{v:.2f}{unit}"


def table(results, md_path=None):
    r = load(results)
    lines = []

    def g(key):
        v = r.get(key)
        return statistics.median(v) if v else None

    def fr(key):
        """the median, with the range over rounds when there were several"""
        v = r.get(key)
        if not v:
            return "—"
        if len(v) == 1:
            return fmt(v[0])
        return f"{fmt(statistics.median(v))} ({fmt(min(v))}–{fmt(max(v))})"

    def row(cells):
        lines.append("| " + " | ".join(cells) + " |")

    def ratio(a, b):
        if a is None or b is None or b == 0:
            return "—"
        return f"{a / b:.2f}×"

    nr = max((len(v) for v in r.values()), default=1)
    lines.append("MLP SGD step, 784-256-10, batch 128, random data: median ms per step "
                 f"(median over {nr} round{'s' if nr > 1 else ''}{', range in parentheses' if nr > 1 else ''}; lower is better)")
    lines.append("")
    row(["implementation", "1 thread", "2 threads", "dflow cpu's speed ÷ this one's (1 / 2 thr)"])
    row(["---"] * 4)
    impls = [("dflow_cpu", "dflow --backend cpu (LLVM JIT)"),
             ("dflow_interp", "dflow --backend interp (reference)"),
             ("torch_eager", "PyTorch eager"),
             ("torch_compile", "PyTorch torch.compile (Inductor)"),
             ("jax_jit", "JAX jit (XLA)"),
             ("gemm", "its 5 GEMMs alone, OpenBLAS (2 thr: the faster of its threads and rows split over ours)")]
    for key, label in impls:
        a, b = g(f"mlp_ms.{key}.1"), g(f"mlp_ms.{key}.2")
        if a is None and b is None:
            continue
        rel = "" if key == "dflow_cpu" else (
            f"{ratio(a, g('mlp_ms.dflow_cpu.1'))} / {ratio(b, g('mlp_ms.dflow_cpu.2'))}")
        row([label, fr(f"mlp_ms.{key}.1"), fr(f"mlp_ms.{key}.2"), rel])
    lines.append("")
    lines.append("Targets of issue 3, as the ratios they name (medians; the MLP targets are stated at 2 threads):")
    lines.append("")
    row(["target", "needs", "1 thread", "2 threads", "met (1 / 2 thr)"])
    row(["---"] * 5)

    def target(name, need, f, ok):
        vals = [f(t) for t in (1, 2)]
        shown = ["—" if v is None else f"{v:.2f}" for v in vals]
        met = " / ".join("—" if v is None else ("yes" if ok(v) else "**no**") for v in vals)
        row([name, need, shown[0], shown[1], met])

    def div(a, b):
        return None if a is None or b is None or b == 0 else a / b

    for other, label, need in (("torch_eager", "PyTorch eager", 1.5), ("torch_compile", "torch.compile", 1.0),
                               ("jax_jit", "JAX jit", 1.0)):
        target(f"MLP step speed ÷ {label}'s", f"≥ {need:.1f}",
               lambda t, o=other: div(g(f"mlp_ms.{o}.{t}"), g(f"mlp_ms.dflow_cpu.{t}")), lambda v, n=need: v >= n)
    target("MLP step time ÷ its GEMMs alone", "≤ 1.5",
           lambda t: div(g(f"mlp_ms.dflow_cpu.{t}"), g(f"mlp_ms.gemm.{t}")), lambda v: v <= 1.5)
    target("elementwise chain bandwidth ÷ triad", "≥ 0.70",
           lambda t: div(g(f"ew_chain_gbs.dflow_cpu.{t}"), g(f"triad_gbs.{t}")), lambda v: v >= 0.70)
    target("row softmax bandwidth ÷ triad", "≥ 0.70",
           lambda t: div(g(f"softmax_gbs.dflow_cpu.{t}"), g(f"triad_gbs.{t}")), lambda v: v >= 0.70)
    cm = g("compile_ms.mnist_mlp")
    row(["JIT compile of mnist_mlp (s)", "≤ 0.5", "", "—" if cm is None else f"{cm / 1e3:.2f}",
         "—" if cm is None else ("yes" if cm <= 500 else "**no**")])
    pm, rb = g("planned_mb.mnist_mlp"), g("rss_mb.dflow_built")
    row(["peak RSS of built mnist_mlp ÷ (planned + 16 MiB)", "≤ 1.00", "",
         "—" if pm is None or rb is None else f"{rb / (pm + 16):.2f}",
         "— (no `dflow build` yet)" if rb is None else ("—" if pm is None else ("yes" if rb <= pm + 16 else "**no**"))])
    lines.append("")
    lines.append("Bandwidth (GB/s; effective bytes: one read + one write per element for dflow, STREAM's 12 B/element for triad)")
    lines.append("")
    row(["benchmark", "1 thread", "2 threads", "ms per pass (1 / 2 thr)"])
    row(["---"] * 4)
    row(["triad a = b + s·c, 3 × 256 MiB (C, OpenMP)", fr("triad_gbs.1"), fr("triad_gbs.2"),
         f"{fmt(g('triad_ms.1'))} / {fmt(g('triad_ms.2'))}"])
    row(["dflow elementwise chain, 10 arithmetic ops, 64M floats", fr("ew_chain_gbs.dflow_cpu.1"),
         fr("ew_chain_gbs.dflow_cpu.2"),
         f"{fmt(g('ew_chain_ms.dflow_cpu.1'))} / {fmt(g('ew_chain_ms.dflow_cpu.2'))}"])
    row(["dflow chain with tanh and sqrt (compute-bound; no target), 64M floats", fr("ew_tanh_gbs.dflow_cpu.1"),
         fr("ew_tanh_gbs.dflow_cpu.2"),
         f"{fmt(g('ew_tanh_ms.dflow_cpu.1'))} / {fmt(g('ew_tanh_ms.dflow_cpu.2'))}"])
    row(["dflow row softmax, 4096 × 4096", fr("softmax_gbs.dflow_cpu.1"), fr("softmax_gbs.dflow_cpu.2"),
         f"{fmt(g('softmax_ms.dflow_cpu.1'))} / {fmt(g('softmax_ms.dflow_cpu.2'))}"])
    lines.append("")
    lines.append("Compile time and memory")
    lines.append("")
    row(["measure", "value"])
    row(["---"] * 2)
    row(["JIT compile of mnist_mlp, sum of `--verbose` compile lines (ms)", fr("compile_ms.mnist_mlp")])
    row(["`dflow run --set steps=2` wall, cpu − interp (ms)", fr("compile_wall_ms.mnist_mlp")])
    pm = g("planned_mb.mnist_mlp")
    budget = None if pm is None else pm + 16
    rc, rb = g("rss_mb.dflow_run_cpu"), g("rss_mb.dflow_built")
    row(["planned memory of mnist_mlp (`--mem-report` planned total: buffers + data) (MiB)", fmt(pm)])
    row(["RSS budget of the target: planned total + 16 MiB (MiB)", fmt(budget)])
    row(["peak RSS, built mnist_mlp executable, 500 steps (MiB)",
         fmt(rb) if rb is not None else "— (`dflow build` not available yet)"])
    row(["peak RSS, `dflow run examples/mnist_mlp.dfl` cpu (JIT + LLVM in process), 500 steps (MiB)", fmt(rc)])
    row(["peak RSS, the same with `--backend interp` (MiB)", fmt(g("rss_mb.dflow_run_interp"))])
    row(["peak RSS, `python -c 'import torch'` (MiB)", fmt(g("rss_mb.import_torch"))])
    if g("gemm_blas_threads_ms.2") is not None:
        row(["the 5 GEMMs at 2 threads: OpenBLAS's threads / rows split over 2 threads (ms)",
             f"{fr('gemm_blas_threads_ms.2')} / {fr('gemm_split_ms.2')}"])
    row(["sgemm 1024³ through OpenBLAS (GFLOP/s, 1 / 2 thr)",
         f"{fr('sgemm1024_gflops.1')} / {fr('sgemm1024_gflops.2')}"])
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if md_path:
        with open(md_path, "w") as f:
            f.write(text)


BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"


def header(results):
    """The run's '# ' lines, the quiet()/busy notes folded into one line."""
    out, quiet, busy = [], 0, []
    for line in open(results):
        if not line.startswith("# "):
            continue
        words = line[2:].split()
        if words and words[0] == "quiet-before":
            quiet += 1
        elif words and words[0] == "busy-before":
            busy.append(words[1] if len(words) > 1 else "?")
        else:
            out.append(line[2:].rstrip())
    if quiet or busy:
        n = quiet + len(busy)
        note = f"machine busy (others above 20% CPU) at the start of {len(busy)} of {n} measurements"
        if 0 < len(busy) <= 6:
            note += ": " + ", ".join(busy)
        out.append(note)
    return out


def update_readme(readme, results, md):
    text = open(readme).read()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} section")
    head = header(results)
    body = "\n".join(f"- {h}" for h in head) + "\n\n" + open(md).read()
    pre, rest = text.split(BEGIN, 1)
    post = rest.split(END, 1)[1]
    with open(readme, "w") as f:
        f.write(pre + BEGIN + "\n" + body + END + post)


def main():
    a = sys.argv[1:]
    if not a:
        raise SystemExit(__doc__)
    cmd = a[0]
    if cmd == "npy":
        write_npy(a[1], int(a[2]), int(a[3]) if len(a) > 3 else 0)
    elif cmd == "train-step":
        print(f"{train_step_ms(a[1]):.4f}")
    elif cmd == "main-iter":
        print(f"{main_iter_ms(a[1], int(a[2])):.4f}")
    elif cmd == "rss":
        print(f"{rss_mb(a[1]):.1f}")
    elif cmd == "planned-mb":
        print(f"{planned_mb(a[1]):.1f}")
    elif cmd == "compile-ms":
        print(f"{compile_ms(a[1]):.1f}")
    elif cmd == "header":
        print("\n".join(header(a[1])))
    elif cmd == "readme":
        update_readme(a[1], a[2], a[3])
    elif cmd == "table":
        table(a[1], a[2] if len(a) > 2 else None)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
