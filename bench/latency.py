#!/usr/bin/env python3
"""Compile latency of the CPU backends against the interpreter.

For each program: end-to-end runs on the interpreter (--backend interp), and
on `--backend auto` (the default: the tiered JIT) and `--backend cpu` (every
graph compiled), each with an empty compile cache (cold: a fresh
$XDG_CACHE_HOME per run) and with a cache that already holds every kernel
(warm: one folder, primed by one `cpu` run), and optionally a baseline dflow
binary (cold, its own cache disabled, its default backend). Every figure is the median of --reps runs, the runs of one
repetition interleaved. Wall time is taken around the process; CPU time
(user + system of the process) is reported beside it, because the machine
may be shared. "compile" is the sum of the per-graph compile times that
`dflow run --verbose` prints (planning, emission, cache lookups, O0/O3,
machine code, linking).

  bench/latency.py --dflow build/dflow [--baseline OLD/dflow] [--reps 5]
                   [--out table.md] PROGRAM.dfl...
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(cmd, env):
    """(wall s, cpu s, stderr text) of one run; raises on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stderr


def compile_ms(log):
    """The per-graph compile times (the total line reads "compiled N graphs in")."""
    return sum(float(x) for x in re.findall(r"compiled in ([0-9.]+) ms", log))


def compile_cpu_ms(log):
    """The CPU time of the same (all compile threads), as --verbose prints it."""
    return sum(float(x) for x in re.findall(r"compiled in [0-9.]+ ms \(cpu ([0-9.]+) ms", log))


def kernels(log):
    """(kernels, unique kernels compiled or loaded) over all graphs."""
    k = sum(int(x) for x in re.findall(r": (\d+) kernels \(", log))
    u = sum(int(x) for x in re.findall(r"; (\d+) new, ", log))
    return k, u


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def measure(prog, dflow, baseline, reps, base_env):
    cold_root = tempfile.mkdtemp(prefix="dflow-lat-cold-")
    warm = tempfile.mkdtemp(prefix="dflow-lat-warm-")
    keys = ["interp_w", "interp_c", "base_w", "base_ms"]
    for b in ("cold", "warm", "acold", "awarm"):
        keys += [b + "_w", b + "_c", b + "_ms", b + "_cms"]
    r = {k: [] for k in keys}
    cpu = ["run", prog, "--no-progress", "--verbose", "--backend", "cpu"]
    auto = ["run", prog, "--no-progress", "--verbose", "--backend", "auto"]
    env_w = dict(base_env, XDG_CACHE_HOME=warm)
    _, _, log = run([dflow] + cpu, env_w)  # primes the warm cache with every kernel
    k, u = kernels(log)

    def one(tag, cmd, env):
        w, c, log = run(cmd, env)
        r[tag + "_w"].append(w)
        r[tag + "_c"].append(c)
        r[tag + "_ms"].append(compile_ms(log))
        r[tag + "_cms"].append(compile_cpu_ms(log))

    try:
        for i in range(reps):
            w, c, _ = run([dflow, "run", prog, "--no-progress", "--backend", "interp"], base_env)
            r["interp_w"].append(w)
            r["interp_c"].append(c)
            cold = os.path.join(cold_root, str(i))
            one("acold", [dflow] + auto, dict(base_env, XDG_CACHE_HOME=cold + "-auto"))
            one("cold", [dflow] + cpu, dict(base_env, XDG_CACHE_HOME=cold))
            one("awarm", [dflow] + auto, env_w)
            one("warm", [dflow] + cpu, env_w)
            if baseline:
                w, c, log = run([baseline, "run", prog, "--no-progress", "--verbose"],
                                dict(base_env, DFLOW_NO_CACHE="1"))
                r["base_w"].append(w)
                r["base_ms"].append(compile_ms(log))
    finally:
        shutil.rmtree(cold_root, ignore_errors=True)
        shutil.rmtree(warm, ignore_errors=True)
    return k, u, {key: med(v) for key, v in r.items()}


def ms(s):
    return "%.0f" % (1e3 * s) if s == s else "—"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dflow", required=True)
    ap.add_argument("--baseline", help="an older dflow binary to compare (cold only)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", help="also write the table here")
    ap.add_argument("programs", nargs="+")
    a = ap.parse_args()
    env = dict(os.environ)
    env.pop("DFLOW_NO_CACHE", None)
    rows = []
    for prog in a.programs:
        print("latency: %s" % prog, file=sys.stderr)
        k, u, m = measure(prog, a.dflow, a.baseline, a.reps, env)
        def pair(w, c):
            return "%s (%s)" % (ms(w), ms(c))

        def ratio(a):
            return "%.2f (%.2f)" % (m[a + "_w"] / m["interp_w"], m[a + "_c"] / m["interp_c"])

        cells = [
            "`%s`" % os.path.basename(prog), "%d (%d)" % (k, u),
            pair(m["interp_w"], m["interp_c"]),
            pair(m["acold_w"], m["acold_c"]), ratio("acold"),
            pair(m["awarm_w"], m["awarm_c"]),
            pair(m["cold_ms"] / 1e3, m["cold_cms"] / 1e3), pair(m["cold_w"], m["cold_c"]),
            ratio("cold"),
            pair(m["warm_ms"] / 1e3, m["warm_cms"] / 1e3), pair(m["warm_w"], m["warm_c"]),
        ]
        if a.baseline:
            cells.append("%s / %s" % (ms(m["base_ms"] / 1e3), ms(m["base_w"])))
        row = "| " + " | ".join(cells) + " |"
        rows.append(row)
    head = ("| program | kernels (unique) | interp end-to-end ms, wall (cpu) "
            "| auto (default), cold: end-to-end ms, wall (cpu) | auto cold ÷ interp, wall (cpu) "
            "| auto, warm: end-to-end ms, wall (cpu) "
            "| cpu, cold: compile ms, wall (cpu) | cpu, cold: end-to-end ms, wall (cpu) "
            "| cpu cold ÷ interp, wall (cpu) "
            "| cpu, warm: compile ms, wall (cpu) | cpu, warm: end-to-end ms, wall (cpu) |")
    sep = "| --- " * 11 + "|"
    if a.baseline:
        head += " before: cold compile / end-to-end ms, wall |"
        sep += " --- |"
    load = open("/proc/loadavg").read().split()[:3]
    text = "\n".join(["medians of %d runs; load average at the end %s" % (a.reps, "/".join(load)),
                      "", head, sep] + rows) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
