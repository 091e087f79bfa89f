#!/usr/bin/env bash
# The multi-rank tests, with 2 ranks of OpenMPI's mpirun on this machine (CI
# runs them: .ci/run). As root in a container OpenMPI needs
# OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM), and --oversubscribe on a machine with
# fewer cores than ranks; OMPI_MCA_btl_vader_single_copy_mechanism=none
# because containers usually forbid the cross-memory attach it would use.
set -euo pipefail
dist_test="$1"
mnist="$2"
spheres="$3"
report="${4:-}"
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: no mpirun (./bazelw installs openmpi-bin)"
  exit 0
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
run2() { mpirun --oversubscribe -np 2 "$@"; }
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
py=/usr/bin/python3

# The collectives, the data-parallel gradient and the parameter checksums.
run2 "$dist_test" >"$tmp/dist.log" 2>&1 || { cat "$tmp/dist.log"; echo "FAIL: dist_test with 2 ranks"; exit 1; }
[[ $(grep -c "PASSED.*6 tests" "$tmp/dist.log") == 2 ]] || { cat "$tmp/dist.log"; echo "FAIL: dist_test did not pass on both ranks"; exit 1; }

# Compares the curves of a 1-rank and a 2-rank run of a fixed-step solver:
# the same to rounding (relative 1e-5; accuracies exactly), the solver's
# counters summed over the 2 ranks.
compare() {
  "$py" - "$@" <<'PY'
import csv, sys
one, two, exact, summed = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
a, b = list(csv.DictReader(open(one))), list(csv.DictReader(open(two)))
assert len(a) == len(b) and a, f"{one}: {len(a)} rows, {two}: {len(b)}"
for ra, rb in zip(a, b):
    for k in ra:
        x, y = float(ra[k]), float(rb[k])
        if k in exact:
            assert x == y, f"{k}: {x} vs {y}"
        elif k in summed:
            assert y == 2 * x, f"{k}: {x} on one rank, {y} summed over two"
        else:
            assert abs(x - y) <= 1e-5 * max(1.0, abs(x)), f"{k}: {x} vs {y}"
print(f"same to rounding: {two} ({len(a)} rows)")
PY
}

# MNIST (tiny, RK4): 2 ranks equal 1 rank; parameters compared after every step.
if [[ -f "${ANODE_MNIST_DIR:-/nonexistent}/0.json" ]]; then
  common=(--scale tiny --solver rk4 --variants node,anode_p10 --no-plots --quiet)
  "$mnist" "${common[@]}" --out "$tmp/one"
  run2 "$mnist" "${common[@]}" --check-sync --out "$tmp/two"
  for v in node anode_p10; do
    compare "$tmp/one/mnist/curve_$v.csv" "$tmp/two/mnist/curve_$v.csv" seed,step,test_accuracy,train_accuracy,t_end nfe_forward,nfe_backward
  done
  grep -q '"ranks": 2' "$tmp/two/mnist/summary.json" || { echo "FAIL: ranks not recorded"; exit 1; }
  if ls -a "$tmp/two" | grep -q partial; then echo "FAIL: a partial folder was left"; exit 1; fi

  # Global step control: with the adaptive default (Tsit5, adjoint) and the
  # error norm summed over the ranks, each rank takes the single-process
  # steps, forward and backward: the counters are exactly twice one
  # process's, the rest equal to rounding.
  adaptive=(--scale tiny --variants anode_p10 --no-plots --quiet)
  "$mnist" "${adaptive[@]}" --out "$tmp/adaptive1"
  run2 "$mnist" "${adaptive[@]}" --global-steps --check-sync --out "$tmp/adaptive2"
  compare "$tmp/adaptive1/mnist/curve_anode_p10.csv" "$tmp/adaptive2/mnist/curve_anode_p10.csv" seed,step,test_accuracy,train_accuracy,t_end nfe_forward,nfe_backward

  # --parallel runs: the variants spread over the ranks, each trained whole
  # on one rank: the same curves and model files as one process, bit for bit.
  run2 "$mnist" "${common[@]}" --parallel runs --out "$tmp/runs"
  for f in curve_node.csv curve_anode_p10.csv model_node_s0.anode model_anode_p10_s0.anode; do
    cmp "$tmp/one/mnist/$f" "$tmp/runs/mnist/$f" || { echo "FAIL: --parallel runs changed $f"; exit 1; }
  done

  # A rank that fails (its data folder is missing) ends every rank with its
  # message and a non-zero exit, and no results appear.
  if mpirun --oversubscribe -np 1 "$mnist" "${common[@]}" --out "$tmp/fail" : \
      -np 1 -x ANODE_MNIST_DIR=/nonexistent-digits "$mnist" "${common[@]}" --out "$tmp/fail" >"$tmp/fail.log" 2>&1; then
    cat "$tmp/fail.log"; echo "FAIL: a failing rank did not fail the run"; exit 1
  fi
  grep -q "mnist (rank 1): error: .*/nonexistent-digits" "$tmp/fail.log" || { cat "$tmp/fail.log"; echo "FAIL: rank 1's message is missing"; exit 1; }
  [[ ! -e "$tmp/fail/mnist" ]] || { echo "FAIL: a failed run left results"; exit 1; }

  # Different data on the ranks: refused at the start, naming what differs.
  mkdir -p "$tmp/digits"
  cp -r "$ANODE_MNIST_DIR"/. "$tmp/digits"
  "$py" -c "import json,sys; p=sys.argv[1]; d=json.load(open(p)); d['data']=[1-x for x in d['data']]; json.dump(d,open(p,'w'))" "$tmp/digits/0.json"
  if mpirun --oversubscribe -np 1 "$mnist" "${common[@]}" --out "$tmp/fail" : \
      -np 1 -x ANODE_MNIST_DIR="$tmp/digits" "$mnist" "${common[@]}" --out "$tmp/fail" >"$tmp/fail.log" 2>&1; then
    cat "$tmp/fail.log"; echo "FAIL: different data on the ranks was accepted"; exit 1
  fi
  grep -q "the ranks disagree on the MNIST data" "$tmp/fail.log" || { cat "$tmp/fail.log"; echo "FAIL: data mismatch message"; exit 1; }
else
  echo "SKIP (MNIST parts): the MNIST digits are not available"
fi

# Different flags on the ranks: refused at the start.
if mpirun --oversubscribe -np 1 "$spheres" --scale tiny --no-plots --quiet --out "$tmp/fail" : \
    -np 1 "$spheres" --scale tiny --no-plots --quiet --seed 5 --out "$tmp/fail" >"$tmp/fail.log" 2>&1; then
  cat "$tmp/fail.log"; echo "FAIL: different flags on the ranks were accepted"; exit 1
fi
grep -q "the ranks disagree on the flags: rank 1 differs from rank 0" "$tmp/fail.log" || { cat "$tmp/fail.log"; echo "FAIL: flag mismatch message"; exit 1; }
[[ ! -e "$tmp/fail/nested_spheres" ]] || { echo "FAIL: a refused run left results"; exit 1; }

# Nested spheres (tiny, RK4): 2 ranks equal 1 rank.
common=(--scale tiny --solver rk4 --no-plots --quiet)
"$spheres" "${common[@]}" --out "$tmp/one"
run2 "$spheres" "${common[@]}" --check-sync --out "$tmp/two"
for p in 0 3; do
  compare "$tmp/one/nested_spheres/loss_p$p.csv" "$tmp/two/nested_spheres/loss_p$p.csv" iteration,epoch nfe_forward,nfe_backward
done
# The report with its experiments spread over 2 ranks (rank 1's folder
# gathered on rank 0): REPORT.md is the single-process one, timings aside.
if [[ -n "$report" ]]; then
  common=(--scale tiny --only sinusoid,nested_spheres --no-plots --quiet)
  "$report" "${common[@]}" --out "$tmp/report1"
  run2 "$report" "${common[@]}" --out "$tmp/report2"
  "$py" - "$tmp/report1/REPORT.md" "$tmp/report2/REPORT.md" <<'PY'
import re, sys
def untimed(path):
    out, timed = [], set()
    for line in open(path):
        if line.startswith("Written by"):
            continue  # the wall time of the whole run
        if line.startswith("|"):
            cells = line.strip().strip("|").split("|")
            if not re.fullmatch(r"[-| ]+", line.strip()):
                if any("seconds" in c or c.strip() == "ms" for c in cells):
                    timed = {i for i, c in enumerate(cells) if "seconds" in c or c.strip() == "ms"}
                    header = cells
                elif len(cells) == len(header):
                    cells = ["(time)" if i in timed else c for i, c in enumerate(cells)]
            line = "|".join(cells) + "\n"
        else:
            timed, header = set(), []
        out.append(line)
    return out
header = []
a, b = untimed(sys.argv[1]), untimed(sys.argv[2])
assert len(a) > 20, f"{sys.argv[1]}: only {len(a)} lines"
for i, (x, y) in enumerate(zip(a, b)):
    assert x == y, f"line {i + 1} differs:\n  1 rank:  {x}  2 ranks: {y}"
assert len(a) == len(b), f"{len(a)} lines vs {len(b)}"
print(f"REPORT.md the same with 2 ranks ({len(a)} lines, timings aside)")
PY
  [[ -f "$tmp/report2/nested_spheres/model_p3_run1.anode" ]] || { echo "FAIL: rank 1's files were not gathered"; ls "$tmp/report2"/*; exit 1; }
fi
echo "PASS: mpi"
