#!/usr/bin/env bash
# Builds the libFuzzer targets (the IDX reader, the parameter-file reader)
# with Debian's clang and runs each for FUZZ_SECONDS (default 30) from its
# committed seed corpus; a crash, sanitizer report (ASan, UBSan with
# float-cast-overflow), foreign exception, hang (-timeout) or allocation
# beyond -rss_limit_mb fails the script and leaves the input in $out.
#
# Outside Bazel on purpose: Bazel's C++ toolchain here is the system GCC, and
# pointing it at clang (CC=clang) reconfigures @local_config_cc for every
# build sharing the output base and disk cache, rebuilding all targets twice.
# Each reader compiles alone with its few sources (it needs only tensors and
# zlib), so a direct clang++ call takes seconds and keeps the two apart.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${FUZZ_SECONDS:-30}"
out="${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/anode-fuzz.XXXXXX")}"
mkdir -p "$out"
cxx="${CXX_FUZZ:-clang++}"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -fno-omit-frame-pointer -Wall -Werror -I.)

"$cxx" "${flags[@]}" tests/fuzz/idx_fuzzer.cc datasets/idx.cc autodiff/tensor.cc -lz -o "$out/idx_fuzzer" &
idx_build=$!
"$cxx" "${flags[@]}" tests/fuzz/param_fuzzer.cc models/serialize.cc autodiff/tensor.cc -lz -o "$out/param_fuzzer" &
param_build=$!
wait "$idx_build"
wait "$param_build"

# Inputs are written to a file per run: on tmpfs when there is one.
scratch="${TMPDIR:-/tmp}"
if [[ -d /dev/shm && -w /dev/shm ]]; then scratch=/dev/shm; fi
status=0
for target in idx param; do
  corpus="$out/corpus-$target"  # the grown corpus; the seeds stay untouched
  mkdir -p "$corpus"
  echo "fuzz: $target for ${seconds}s (seeds: tests/fuzz/corpus/$target)"
  if ! TMPDIR="$scratch" "$out/${target}_fuzzer" "$corpus" "tests/fuzz/corpus/$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/$target-" >"$out/$target.log" 2>&1; then
    echo "fuzz: $target FAILED; the log and the input are in $out:"
    tail -n 40 "$out/$target.log"
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$target.log" | sed "s/^/fuzz: $target /" || true
  echo "fuzz: $target corpus: $(ls "$corpus" | wc -l) inputs"
done
exit $status
