#!/usr/bin/env bash
# Runs scratchnet's benchmark and the PyTorch reference alternately (3 rounds each, same machine,
# same thread count) and prints the median images/s of each and their ratio.
#   bench/compare.sh [THREADS] [PYTHON]    (PYTHON: an interpreter with torch, default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
py=${2:-python3}
cargo build --release --example bench -q
out=$(mktemp -d)
for round in 1 2 3; do
  ./target/release/examples/bench --threads "$threads" > "$out/ours.$round"
  "$py" bench/pytorch_reference.py --threads "$threads" > "$out/torch.$round"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-14s %12s %12s %8s\n' benchmark scratchnet pytorch ratio
for key in cnn_train cnn_infer mlp_train mlp_sgd_train; do
  ours=$(cat "$out"/ours.* | awk -v k=$key '$1==k {print $2}' | median)
  theirs=$(cat "$out"/torch.* | awk -v k=$key '$1==k {print $2}' | median)
  printf '%-14s %12s %12s %8.2f\n' "$key" "$ours" "$theirs" "$(echo "$ours / $theirs" | bc -l)"
done
echo "(images/s, medians of 3 alternating rounds, $threads threads, $(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
rm -rf "$out"
