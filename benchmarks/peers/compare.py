"""Runs the headline workloads on both sides and prints ours vs PyTorch.

    ANODE_WITH_TORCH=1 ./bazelw run //benchmarks/peers:compare [-- options]

Ours: //benchmarks:models_benchmark with --benchmark_format=json, the
median of --repetitions repetitions (process CPU time, one thread). PyTorch:
the twins in torch_twins.py, in this process, timed the same way (median of
repetitions of process CPU time, one thread). Writes
results/benchmarks/peers.json under the workspace (BUILD_WORKSPACE_DIRECTORY
when run by bazel, else the current directory).

PyTorch here uses the system OpenBLAS, which honours OPENBLAS_CORETYPE; the
shell may force an older core type (Haswell: AVX2 kernels) for other tools,
so this runner clears it, and OPENBLAS_L2_SIZE, before importing torch. The
C++ benchmark does not use OpenBLAS and gets the environment unchanged.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

# Environment for the torch side, before anything imports torch (OpenBLAS
# and OpenMP read it when loaded).
_ORIGINAL_ENV = dict(os.environ)
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

TORCH_MISSING = (
    "compare: PyTorch is not available to {python}.\n"
    "The peer benchmarks need Debian's python3-torch: install python3-torch, e.g.\n"
    "  ANODE_WITH_TORCH=1 ./bazelw run //benchmarks/peers:compare\n"
    "(or: sudo apt-get install python3-torch)."
)


def import_twins():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        sys.exit(TORCH_MISSING.format(python=sys.executable) + f"\n(import torch failed: {e})")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_twins
    return torch_twins


def find_ours(path):
    """The models_benchmark binary: as given (bazel passes a runfiles-relative
    path), else under the runfiles tree."""
    candidates = [path]
    for root in (os.environ.get("RUNFILES_DIR"), os.path.abspath(__file__) + ".runfiles",
                 os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")):
        if root:
            candidates += [os.path.join(root, "anode", path), os.path.join(root, path)]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    sys.exit(f"compare: cannot find the models_benchmark binary (tried {candidates}); "
             "run through `./bazelw run //benchmarks/peers:compare` or pass --ours")


# Our benchmark names for the twins' keys.
OURS_NAME = {
    "W1/backprop": "BM_W1_MnistAnodeStep/backprop",
    "W1/adjoint": "BM_W1_MnistAnodeStep/adjoint",
    "W2/backprop": "BM_W2_SpheresAnodeStep/backprop",
    "W2/adjoint": "BM_W2_SpheresAnodeStep/adjoint",
}
for _m in ("Backprop", "Adjoint", "Checkpoint"):
    for _n in (10, 100, 1000):
        OURS_NAME[f"W3/{_m.lower()}/{_n}"] = f"BM_W3_GradScaling_{_m}/{_n}"

TIME_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def run_ours(binary, repetitions, min_time, name_filter):
    cmd = [binary, "--benchmark_format=json", f"--benchmark_repetitions={repetitions}",
           f"--benchmark_min_time={min_time}", "--benchmark_report_aggregates_only=true",
           f"--benchmark_filter={name_filter}"]
    print("ours: " + " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, env=_ORIGINAL_ENV, check=True, stdout=subprocess.PIPE).stdout
    report = json.loads(out)
    results = {}
    for b in report["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"])
        for suffix in ("/process_time", "/real_time"):
            name = name.removesuffix(suffix)
        unit = TIME_UNIT[b.get("time_unit", "ns")]
        entry = {"cpu_s": b["cpu_time"] * unit, "wall_s": b["real_time"] * unit}
        for k in ("peak_bytes", "GFLOPS", "peak_fraction", "peak_GFLOPS", "MFLOP_per_step",
                  "tape_nodes"):
            if k in b:
                entry[k] = b[k]
        results[name] = entry
    return report.get("context", {}), results


def fmt_time(s):
    if s is None:
        return "-"
    if s >= 1e-1:
        return f"{s * 1e3:.0f} ms"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def fmt_bytes(b):
    if b is None:
        return "-"
    if b >= 1 << 20:
        return f"{b / (1 << 20):.2f} MiB"
    return f"{b / 1024:.0f} KiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", default="benchmarks/models_benchmark",
                    help="path of //benchmarks:models_benchmark (bazel passes it)")
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per repetition")
    ap.add_argument("--only", default="", help="run only keys starting with this (W1, W2, W3)")
    ap.add_argument("--no-memory", action="store_true", help="skip the PyTorch W3 memory profile")
    ap.add_argument("--out", default=None, help="JSON output (default results/benchmarks/peers.json)")
    args = ap.parse_args()

    twins = import_twins()  # fails early, with the install hint, if torch is missing
    import torch

    binary = find_ours(args.ours)
    workloads = [w for w in twins.WORKLOADS if w[0].startswith(args.only)]
    wanted = sorted({w[0].split("/")[0] for w in workloads})  # "W1", "W2", "W3"
    ours_filter = "|".join(["BM_FmaPeak"] + [f"BM_{w}_" for w in wanted])
    ctx, ours = run_ours(binary, args.repetitions, args.min_time, ours_filter)

    rows = []
    for key, label, method, steps, make in workloads:
        print(f"torch: {key}", file=sys.stderr, flush=True)
        fn = make()
        t = twins.time_it(fn, repetitions=args.repetitions, min_time=args.min_time)
        mem = None
        if key.startswith("W3") and not args.no_memory:
            mem = twins.peak_bytes(fn)
        o = ours.get(OURS_NAME[key], {})
        row = {
            "key": key, "workload": label, "method": method, "steps": steps,
            "ours_name": OURS_NAME[key],
            "ours_cpu_s": o.get("cpu_s"), "ours_wall_s": o.get("wall_s"),
            "torch_cpu_s": t["cpu_s"], "torch_wall_s": t["wall_s"],
            "torch_cpu_s_repetitions": t["cpu_s_all"],
            "speedup": (t["cpu_s"] / o["cpu_s"]) if o.get("cpu_s") else None,
            "ours_peak_bytes": o.get("peak_bytes"), "torch_peak_bytes": mem,
        }
        if key.startswith("W2") or key.startswith("W3"):
            flops = twins.w2_flops(method, steps)
            row["flops"] = flops
            row["ours_gflops"] = flops / o["cpu_s"] * 1e-9 if o.get("cpu_s") else None
            row["torch_gflops"] = flops / t["cpu_s"] * 1e-9
            if "peak_fraction" in o:
                row["ours_peak_fraction"] = o["peak_fraction"]
                row["peak_gflops"] = o.get("peak_GFLOPS")
        rows.append(row)

    # ---- Tables ----
    print()
    print("One thread, process CPU time per step, median of "
          f"{args.repetitions} repetitions. Speedup = PyTorch / ours.")
    head = f"{'workload':<24}{'method':<12}{'N':>5}  {'ours':>10}  {'PyTorch':>10}  {'speedup':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        sp = f"{r['speedup']:.1f}x" if r["speedup"] else "-"
        print(f"{r['workload']:<24}{r['method']:<12}{r['steps']:>5}  {fmt_time(r['ours_cpu_s']):>10}  "
              f"{fmt_time(r['torch_cpu_s']):>10}  {sp:>8}")
    w2 = [r for r in rows if r["key"].startswith("W2")]
    if w2:
        print()
        print("W2 GEMM throughput (FLOPs counted from the shapes, see models_benchmark.cc):")
        for r in w2:
            frac = r.get("ours_peak_fraction")
            print(f"  {r['method']:<10} {r['flops'] / 1e6:.3f} MFLOP/step  ours {r['ours_gflops'] or 0:.1f} GFLOP/s"
                  + (f" = {100 * frac:.1f}% of the measured FMA peak {r['peak_gflops']:.1f} GFLOP/s"
                     if frac is not None else "")
                  + f"   PyTorch {r['torch_gflops']:.1f} GFLOP/s")
    w3 = [r for r in rows if r["key"].startswith("W3")]
    if w3:
        print()
        print("W3 memory of one gradient: ours = tape arena peak; PyTorch = peak bytes of the CPU")
        print("allocator during the call (torch.profiler profile_memory), above the start.")
        print(f"{'method':<12}{'N':>5}  {'ours':>11}  {'PyTorch':>11}")
        for r in w3:
            print(f"{r['method']:<12}{r['steps']:>5}  {fmt_bytes(r['ours_peak_bytes']):>11}  "
                  f"{fmt_bytes(r['torch_peak_bytes']):>11}")

    # ---- Targets ----
    def get(key):
        return next((r for r in rows if r["key"] == key), None)

    targets = []
    for m in ("backprop", "adjoint"):
        r = get(f"W1/{m}")
        if r and r["speedup"]:
            targets.append((f"W1 {m} >= 10x PyTorch", r["speedup"] >= 10, f"{r['speedup']:.1f}x"))
        r = get(f"W2/{m}")
        if r and r["speedup"]:
            targets.append((f"W2 {m} >= 3x PyTorch", r["speedup"] >= 3, f"{r['speedup']:.1f}x"))
    r = get("W2/backprop")
    if r and r.get("ours_peak_fraction") is not None:
        targets.append(("W2 backprop >= 40% of FMA peak", r["ours_peak_fraction"] >= 0.4,
                        f"{100 * r['ours_peak_fraction']:.1f}%"))
    mem = {m: [get(f"W3/{m}/{n}") for n in (10, 100, 1000)] for m in ("backprop", "adjoint", "checkpoint")}
    if all(x and x["ours_peak_bytes"] for x in mem["adjoint"]):
        a = [x["ours_peak_bytes"] for x in mem["adjoint"]]
        targets.append(("W3 adjoint memory flat in N", max(a) <= 1.05 * min(a),
                        " / ".join(fmt_bytes(v) for v in a)))
    if all(x and x["ours_peak_bytes"] for x in mem["backprop"]):
        b = [x["ours_peak_bytes"] for x in mem["backprop"]]
        ratio = b[2] / b[1]
        targets.append(("W3 backprop memory linear in N", 8 <= ratio <= 11,
                        " / ".join(fmt_bytes(v) for v in b) + f" (x{ratio:.1f} from 100 to 1000)"))
    if all(x and x["ours_peak_bytes"] for x in mem["checkpoint"]):
        c = mem["checkpoint"][2]["ours_peak_bytes"]
        targets.append(("W3 checkpoint <= a few MB at N = 1000", c <= 3 * (1 << 20), fmt_bytes(c)))
    if targets:
        print()
        print("Targets:")
        for name, ok, value in targets:
            print(f"  [{'met' if ok else 'MISSED'}] {name}: {value}")

    out = args.out
    if out is None:
        root = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
        out = os.path.join(root, "results", "benchmarks", "peers.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({
            "machine": {"python": sys.version.split()[0], "torch": torch.__version__,
                        "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                        "ours_context": ctx},
            "timing": "process CPU time per step, one thread, median of repetitions",
            "rows": rows,
            "targets": [{"target": n, "met": ok, "value": v} for n, ok, v in targets],
        }, f, indent=2)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
