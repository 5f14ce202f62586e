#!/usr/bin/env bash
# Builds the browser demo into web/dist/: scratchnet compiled to WebAssembly (crate web/, release
# profile "wasm-release", SIMD128), its JavaScript bindings from wasm-bindgen, the page, the
# shipped Fashion-MNIST and MNIST models (CNN and MLP each) and the bundled images. Serve it with
#   python3 -m http.server -d web/dist -b 127.0.0.1 8000
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
dist="$root/web/dist"

# wasm-bindgen's command-line tool must be exactly the version of the wasm-bindgen crate in
# Cargo.lock; built from source with cargo, kept under target/tools/. Not --locked: its own lock
# file pins a webpki-roots release the crates.io index no longer offers; --no-default-features
# leaves out the TLS stack, which only its test runner's downloads use.
version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
[ -n "$version" ] || { echo "build.sh: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
tools="$root/target/tools/wasm-bindgen-$version"
if [ ! -x "$tools/bin/wasm-bindgen" ]; then
  echo "installing wasm-bindgen-cli $version into $tools"
  cargo install wasm-bindgen-cli --version "=$version" --no-default-features --root "$tools"
fi

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# SIMD128 (Chrome 91+, Firefox 89+, Safari 16.4+): the matrix products use it.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" \
  cargo build -p scratchnet-web --target wasm32-unknown-unknown --profile wasm-release
wasm="$root/target/wasm32-unknown-unknown/wasm-release/scratchnet_web.wasm"

rm -rf "$dist"
mkdir -p "$dist/models"
cp -R "$root/web/static/." "$dist/"
"$tools/bin/wasm-bindgen" --target web --no-typescript --out-dir "$dist/pkg" "$wasm"
cp "$root/models/fashion-mnist-cnn-best.safetensors" "$root/models/fashion-mnist-mlp.safetensors" \
  "$root/models/mnist-cnn.safetensors" "$root/models/mnist-mlp.safetensors" "$dist/models/"
echo "built $dist ($(du -sb "$dist" | cut -f1) bytes; wasm $(stat -c %s "$dist/pkg/scratchnet_web_bg.wasm") bytes)"
# The digit mode's files, fetched only once the page shows digits (web/README.md).
on_switch="$(cat "$dist"/models/mnist-*.safetensors "$dist"/mnist/samples/* | wc -c)"
echo "digit mode: $on_switch bytes on switching to digits (models/mnist-*, mnist/samples/), $(cat "$dist"/mnist/data/* | wc -c) more to train on digits (mnist/data/)"
