#!/usr/bin/env bash
# The demo in a real browser: builds web/dist (web/build.sh) and the scratchnet binary, serves the
# page on 127.0.0.1, and runs web/test/browser-test.mjs in Debian's headless chromium (puppeteer-core
# from web/test/package-lock.json). Needs: chromium (apt-get install -y chromium), node and npm, and
# Fashion-MNIST for `scratchnet evaluate` (apt-get install -y dataset-fashion-mnist); the MNIST
# test set it evaluates a digit model on is committed (tests/data/mnist/).
#   web/test.sh [--screenshot docs/web-demo.png]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
screenshot=()
[ "${1:-}" = "--screenshot" ] && screenshot=(--screenshot "$root/${2:?--screenshot needs a path}")

web/build.sh
cargo build --release --bin scratchnet
[ -d web/test/node_modules/puppeteer-core ] || (cd web/test && npm ci --no-audit --no-fund)

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server -d web/dist -b 127.0.0.1 "$port" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
  sleep 0.1
done

out="$root/target/web-test"
rm -rf "$out"
node web/test/browser-test.mjs --url "http://127.0.0.1:$port/" --dist "$root/web/dist" \
  --scratchnet "$root/target/release/scratchnet" --mnist "$root/tests/data/mnist" --out "$out" "${screenshot[@]}"
