#!/usr/bin/env bash
# scratchnet's end-to-end benchmark and the PyTorch reference, run alternately (ROUNDS rounds each,
# same machine) at 1 and at 2 threads; prints median images/s, their ratio, GFLOP/s as a share of
# PyTorch's fp32 sgemm rate (4096^3, the practical ceiling), and the 1 -> 2 thread scaling.
# Each instruction-set level in ISAS runs both sides capped to it: ours with
# SCRATCHNET_MAX_CPU_ISA, PyTorch with ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA and MKL_ENABLE_INSTRUCTIONS
# ("best": no cap).
#   bench/compare.sh [PYTHON] [ROUNDS]    (PYTHON: an interpreter with torch, default python3)
#   ONLY=mlp_train bench/compare.sh ...   (one benchmark: cnn_train, cnn_infer, mlp_train, mlp_sgd_train;
#                                          each benchmark always runs in a process of its own)
#   ISAS="best avx2" bench/compare.sh ... (the default; also: avx512)
#   BATCH=256 bench/compare.sh ...        (cnn_train and cnn_infer at another batch size than 64)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
rounds=${2:-3}
keys=${ONLY:-cnn_train cnn_infer mlp_train mlp_sgd_train}
isas=${ISAS:-best avx2}
# The end-to-end benchmark's binary (cargo bench builds it with the release settings).
bench=$(cargo bench --bench end_to_end --no-run --message-format=json -q | grep '"name":"end_to_end"' |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Each side capped to a level (best: no cap).
ours() {
  if [ "$1" = best ]; then "$bench" "${@:2}"
  else SCRATCHNET_MAX_CPU_ISA="$1" "$bench" "${@:2}"; fi
}
theirs() {
  case "$1" in
    best) "$py" bench/pytorch_reference.py "${@:2}" ;;
    avx2) ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 "$py" bench/pytorch_reference.py "${@:2}" ;;
    avx512) ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX512_CORE "$py" bench/pytorch_reference.py "${@:2}" ;;
    *) echo "unknown level $1 in ISAS" >&2; exit 2 ;;
  esac
}
# Each benchmark in a process of its own, as a user runs one network: run after the CNN benchmarks
# in one process, our MLP ran ~25% slower (same binary; PyTorch's did not change).
for round in $(seq "$rounds"); do
  for isa in $isas; do
    for t in 1 2; do
      for key in $keys; do
        ours "$isa" --threads "$t" --only "$key" ${BATCH:+--batch "$BATCH"} >> "$out/ours.$isa.$t.$round"
        theirs "$isa" --threads "$t" --only "$key" ${BATCH:+--batch "$BATCH"} >> "$out/torch.$isa.$t.$round"
      done
    done
  done
done
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
get() { cat "$out"/$1.$isa.$2.* | awk -v k="$3" '$1==k {print $2}' | median; }
# Multiply-adds x 2 per image: forward 39.66 MFLOP; training adds dW for all layers and dX for
# all but the first: 118.6 MFLOP. The MLP: 0.218 forward, 0.454 training.
declare -A mflop=([cnn_train]=118.6 [cnn_infer]=39.66 [mlp_train]=0.4544 [mlp_sgd_train]=0.4544)
for isa in $isas; do
echo "######## instruction set: $isa"
for t in 1 2; do
  ceiling=$(get torch "$t" sgemm_ceiling)
  echo "== $t thread(s); sgemm ceiling $ceiling GFLOP/s"
  printf '%-14s %12s %12s %7s %16s %16s\n' benchmark scratchnet pytorch ratio "ours GFLOP/s" "pytorch GFLOP/s"
  for key in $keys; do
    ours=$(get ours "$t" "$key")
    theirs=$(get torch "$t" "$key")
    go=$(echo "$ours * ${mflop[$key]} / 1000" | bc -l)
    gt=$(echo "$theirs * ${mflop[$key]} / 1000" | bc -l)
    printf '%-14s %12s %12s %7.2f %8.1f (%3.0f%%) %8.1f (%3.0f%%)\n' "$key" "$ours" "$theirs" \
      "$(echo "$ours / $theirs" | bc -l)" "$go" "$(echo "100 * $go / $ceiling" | bc -l)" \
      "$gt" "$(echo "100 * $gt / $ceiling" | bc -l)"
  done
done
echo "== scaling, 2 threads / 1 thread"
printf '%-14s %10s %10s\n' benchmark scratchnet pytorch
for key in $keys; do
  printf '%-14s %10.2f %10.2f\n' "$key" "$(echo "$(get ours 2 $key) / $(get ours 1 $key)" | bc -l)" \
    "$(echo "$(get torch 2 $key) / $(get torch 1 $key)" | bc -l)"
done
done
echo "(medians of $rounds alternating rounds, $(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores)"
