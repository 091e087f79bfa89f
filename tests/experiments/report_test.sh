#!/usr/bin/env bash
# The umbrella report at --scale tiny: every experiment runs and REPORT.md
# embeds their tables and figures.
set -euo pipefail
bin="$1"
out="${TEST_TMPDIR:-$(mktemp -d)}/results"
only="sinusoid,nested_spheres"
if [[ -f "${ANODE_MNIST_DIR:-/nonexistent}/0.json" ]]; then only="$only,mnist,gradient_methods"; fi
"$bin" --scale tiny --out "$out" --quiet --only "$only"
report="$out/REPORT.md"
[[ -f "$report" ]] || { echo "FAIL: no REPORT.md"; exit 1; }
grep -q "## 4.2 Nested spheres" "$report" || { echo "FAIL: spheres section missing"; exit 1; }
grep -q "fig8_spheres_contours.png" "$report" || { echo "FAIL: figures not embedded"; exit 1; }
# The p = 10 ablation: one row per variant, its figure embedded.
grep -q "### Why ANODE p = 10 stalls" "$report" || { echo "FAIL: p = 10 ablation missing"; exit 1; }
grep -q "^| Adam lr 0.01, hidden 50 | " "$report" || { echo "FAIL: ablation rows missing"; exit 1; }
grep -q "fig_sinusoid_p10_ablation.png" "$report" || { echo "FAIL: ablation figure not embedded"; exit 1; }
if [[ "$only" == *mnist* ]]; then
  grep -q "Table 1" "$report" || { echo "FAIL: Table 1 missing"; exit 1; }
fi
# The gradient table is read from the CSV by column name: each row's
# tolerance and error are the CSV's.
if [[ "$only" == *gradient_methods* ]]; then
  csv="$out/gradient_methods/tolerance_spheres_anode_p5.csv"
  header=$(head -1 "$csv")
  [[ "$header" == method,tolerance,rel_error,* ]] || { echo "FAIL: unexpected CSV header $header"; exit 1; }
  row=$(sed -n 2p "$csv")
  method=$(cut -d, -f1 <<<"$row")
  err=$(printf '%.1e' "$(cut -d, -f3 <<<"$row")")
  grep -q "^| $method | 1.0e-02 | $err |" "$report" || { echo "FAIL: the first gradient row ($method, $err) is not in the report"; grep "^| $method" "$report"; exit 1; }
  # Every gradient method has its rows, with the recomputed steps (the last
  # column, read by name).
  for m in backprop adjoint checkpoint interpolating interpolating_checkpoint quadrature binomial symplectic; do
    grep -q "^| $m | 1.0e-02 | " "$report" || { echo "FAIL: no $m row in the gradient table"; exit 1; }
  done
  grep -q "^| method | tolerance | error | ms | peak kB | NFE fwd | NFE bwd | recomputed |$" "$report" ||
    { echo "FAIL: the gradient table has no recomputed column"; exit 1; }
  grep -q "^| T | .* binomial | symplectic |$" "$report" || { echo "FAIL: the dissipative table lacks binomial and symplectic"; exit 1; }
fi
# Every embedded figure exists.
grep -o '](\([^)]*\.png\))' "$report" | sed 's/](\(.*\))/\1/' | while read -r f; do
  [[ -f "$out/$f" ]] || { echo "FAIL: $f embedded but missing"; exit 1; }
done
echo "PASS: report"
