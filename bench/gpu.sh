#!/usr/bin/env bash
# scratchnet on a real GPU: checks what the machine has, runs the GPU tests, then times
# `bench --device gpu` against bench/pytorch_reference.py --device cuda, alternating, and prints
# median images/s and their ratios, as bench/compare.sh does on the CPU. Made for a lent machine
# with no Rust toolchain and no network: everything it runs is built here and carried there.
#
# Here (with cargo), from the repository root:
#   bench/gpu.sh --prepare [DATA_DIR]
# builds the end-to-end benchmark (benches/end_to_end.rs) and `scratchnet` in release,
# `cargo test --release --test gpu --no-run` and `cargo test --release --lib --no-run` (their
# paths taken from --message-format=json), strips and xz-compresses the four binaries, copies the
# Fashion-MNIST IDX files and downloads the Vulkan loader packages (libvulkan1, glvnd) into
# target/gpu-carry/ (~50 MB; the whole tree that travels must stay under 64 MiB).
# There, from the repository root (the device tool: carry ["target/gpu-carry"], timeout_s 600):
#   bash bench/gpu.sh [CARRY_DIR] [DATA_DIR]
# CARRY_DIR defaults to target/gpu-carry; DATA_DIR (the folder holding the four IDX files) to
# CARRY_DIR/data/fashion-mnist, shared/fashion-mnist, $SCRATCHNET_DATA/fashion-mnist,
# data/fashion-mnist or /usr/share/datasets/fashion-mnist, the first that exists.
# Settings: ROUNDS (3), KEYS ("cnn_train cnn_infer mlp_train"), PYTHON (python3), BUDGET (seconds
# for the whole run, 450), LIMIT (bench --limit N, for emulated adapters), ALLOW_EMULATED=1 (bench
# a CPU emulation such as lavapipe too). Results go to $OUT if set, else ./gpu-results.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} # lavapipe warns without it

# The first Fashion-MNIST folder of the usual places, or $1 if given.
find_data() {
  local d
  for d in ${1:+"$1"} "${2:-}" shared/fashion-mnist ${SCRATCHNET_DATA:+"$SCRATCHNET_DATA/fashion-mnist"} \
    data/fashion-mnist /usr/share/datasets/fashion-mnist; do
    if [ -n "$d" ] && ls "$d"/train-images-idx3-ubyte* >/dev/null 2>&1; then
      (cd "$d" && pwd)
      return 0
    fi
  done
  return 1
}

# The executable of a `cargo test --no-run --message-format=json` run.
test_exe() {
  grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4
}

prepare() {
  set -e
  local carry=target/gpu-carry data
  data=$(find_data "${1:-}") || { echo "no Fashion-MNIST folder found (give it as an argument)"; exit 1; }
  cargo build --release --bin scratchnet
  local bench gpu_tests kernel_tests
  bench=$(cargo bench --bench end_to_end --no-run --message-format=json | grep '"name":"end_to_end"' | test_exe)
  gpu_tests=$(cargo test --release --test gpu --no-run --message-format=json | test_exe)
  kernel_tests=$(cargo test --release --lib --no-run --message-format=json | test_exe)
  rm -rf "$carry"
  mkdir -p "$carry/data/fashion-mnist" "$carry/debs"
  # Without debug info and compressed: the binaries are ~200 MB as built, ~15 MB so.
  local src name
  for pair in "$bench:bench" "target/release/scratchnet:scratchnet" \
    "$gpu_tests:gpu-tests" "$kernel_tests:kernel-tests"; do
    src=${pair%%:*} name=${pair##*:}
    strip -o "$carry/$name" "$src"
    xz -T0 -9 "$carry/$name"
  done
  cp "$data"/train-images-idx3-ubyte* "$data"/train-labels-idx1-ubyte* "$data"/t10k-images-idx3-ubyte* \
    "$data"/t10k-labels-idx1-ubyte* "$carry/data/fashion-mnist/"
  # The lent machine may have no Vulkan loader: the loader and
  # glvnd, which NVIDIA's Vulkan driver needs, unpacked there only if libvulkan.so.1 is missing.
  local o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/gpu-carry-apt"
  mkdir -p /tmp/gpu-carry-apt/partial
  if ! { apt-get $o update -qq && (cd "$carry/debs" && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 \
    libopengl0 libgl1 libglx0 libgles2); }; then
    echo "warning: the Vulkan loader packages could not be downloaded; a machine without libvulkan.so.1 will not run scratchnet's GPU path"
  fi
  {
    echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock examples tests || echo ' (with uncommitted changes)')"
    echo "built $(date -u '+%F %T') UTC with $(rustc -V)"
  } >"$carry/BUILD.txt"
  set +e
  local tree
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  du -b -d0 "$carry" | awk -v t="$tree" '{printf "%s: %.1f MB; with the working tree %.1f MB (limit 67.1 MB = 64 MiB)\n", $2, $1/1e6, ($1+t)/1e6}'
  echo 'then: the device tool, run(command="bash bench/gpu.sh", carry=["target/gpu-carry"], timeout_s=600)'
}

if [ "${1:-}" = --prepare ]; then
  shift
  prepare "$@"
  exit
fi

main() {
  carry=${1:-target/gpu-carry}
  rounds=${ROUNDS:-3}
  keys=${KEYS:-cnn_train cnn_infer mlp_train}
  py=${PYTHON:-python3}
  budget=${BUDGET:-450}
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT

  say() { printf '%-9s %s\n' "[$1]" "$2" | tee -a "$res/checks.txt"; }
  : >"$res/checks.txt"
  # Seconds left of the budget, less `reserve` for what comes after.
  left() { echo $((budget - SECONDS - ${1:-0})); }
  failed() { [ "$1" = 124 ] && echo "timed out (what it printed before counts)" || echo "failed (exit $1)"; }
  # timeout bounded by the budget; a step with under 10 s left is skipped.
  bounded() {
    local max=$1 reserve=$2 t
    shift 2
    t=$(left "$reserve")
    [ "$t" -gt "$max" ] && t=$max
    if [ "$t" -lt 10 ]; then
      echo "(skipped, out of time: $*)"
      return 124
    fi
    timeout -k 5 "$t" "$@"
  }

  echo "== scratchnet on a GPU: $(date -u '+%F %T') UTC, $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  [ -f "$carry/BUILD.txt" ] && cat "$carry/BUILD.txt"

  echo "== checks"
  glibc=$(ldd --version 2>/dev/null | head -1 | grep -o '[0-9]*\.[0-9]*$')
  if [ -n "$glibc" ] && [ "$(printf '%s\n' 2.35 "$glibc" | sort -V | head -1)" != 2.35 ]; then
    say MISSING "glibc $glibc: the binaries need 2.35 or later (build them on an older system)"
  else
    say info "glibc ${glibc:-unknown} (the binaries need 2.35 or later)"
  fi
  # Binaries: carried as NAME.xz (from --prepare) or NAME; env BENCH, SCRATCHNET, GPU_TESTS, KERNEL_TESTS override.
  mkdir -p "$work/bin/deps"
  unpack() {
    local name=$1 over=$2 dest=$3
    if [ -n "$over" ]; then
      cp "$over" "$dest"
    elif [ -f "$carry/$name" ]; then
      cp "$carry/$name" "$dest"
    elif [ -f "$carry/$name.xz" ]; then
      if command -v xz >/dev/null; then
        xz -dc "$carry/$name.xz" >"$dest"
      else
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$carry/$name.xz" "$dest"
      fi
    else
      return 1
    fi && chmod +x "$dest"
  }
  have_bin() {
    if ! unpack "$@"; then
      say MISSING "$1: not in $carry (bench/gpu.sh --prepare makes it)"
      return 1
    elif ! "$3" --help >/dev/null 2>&1; then
      say MISSING "$1 does not start here: $("$3" --help 2>&1 | tail -1)"
      return 1
    fi
  }
  bench=$work/bin/bench scratchnet=$work/bin/scratchnet gpu_tests=$work/bin/deps/gpu-tests kernel_tests=$work/bin/deps/kernel-tests
  have_bin bench "${BENCH:-}" "$bench" && have_bench=1 || have_bench=0
  have_bin scratchnet "${SCRATCHNET:-}" "$scratchnet" && have_cli=1 || have_cli=0
  have_bin gpu-tests "${GPU_TESTS:-}" "$gpu_tests" && have_tests=1 || have_tests=0
  have_bin kernel-tests "${KERNEL_TESTS:-}" "$kernel_tests" && have_kernels=1 || have_kernels=0
  [ $((have_bench + have_cli + have_tests + have_kernels)) = 4 ] && say ok "binaries: bench, scratchnet, GPU tests, kernel tests"

  if data=$(find_data "${2:-}" "$carry/data/fashion-mnist"); then
    say ok "Fashion-MNIST: $data"
    # scratchnet finds it as $SCRATCHNET_DATA/fashion-mnist; the CLI tests (which unset it) as ./data/.
    mkdir -p "$work/data"
    ln -s "$data" "$work/data/fashion-mnist"
    export SCRATCHNET_DATA=$work/data
  else
    say MISSING "Fashion-MNIST: no folder with train-images-idx3-ubyte[.gz] (give it as the second argument)"
    data=
  fi

  if command -v nvidia-smi >/dev/null; then
    say ok "nvidia-smi: $(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -1)"
  else
    say MISSING "nvidia-smi: not on the PATH (no NVIDIA driver?)"
  fi

  # Vulkan: the loader (libvulkan.so.1), a driver manifest (ICD), and an adapter wgpu can open.
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    if ls "$carry"/debs/*.deb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v dpkg >/dev/null; then
      # The device tool's README's recipe: unpack into / and refresh the linker cache.
      for f in "$carry"/debs/*.deb; do dpkg -x "$f" /; done
      ldconfig
      unpacked=1
      say info "Vulkan loader: not installed; unpacked the carried $(ls "$carry"/debs/*.deb | wc -l) packages"
    fi
  fi
  if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    say ok "Vulkan loader: $(ldconfig -p | grep -m1 'libvulkan\.so\.1' | awk '{print $NF}')"
  else
    say MISSING "Vulkan loader libvulkan.so.1: not installed$([ -n "${unpacked:-}" ] && echo ", not even after unpacking $carry/debs" ||
      echo ", none carried (bench/gpu.sh --prepare downloads libvulkan1)")"
  fi
  icds=$(ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json 2>/dev/null | xargs)
  nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if ! grep -qil nvidia $icds /dev/null 2>/dev/null && [ -f "$nv_icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
    # NVIDIA's manifest outside the loader's search path (seen on these machines).
    export VK_DRIVER_FILES=$nv_icd
    [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] &&
      export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    icds="$icds VK_DRIVER_FILES=$nv_icd"
  fi
  if [ -n "$icds" ]; then
    say ok "Vulkan drivers (ICD manifests): $icds"
  else
    say MISSING "Vulkan driver: no ICD manifest in /usr/share/vulkan/icd.d, /etc/vulkan/icd.d or $nv_icd"
  fi

  gpu_ok=0 adapter=
  if [ $have_cli = 1 ]; then
    probe() {
      adapter=$(timeout 30 "$scratchnet" devices --json 2>&1 | head -1)
      [[ $adapter == *'"name"'* && $adapter != *'"emulated":true'* ]]
    }
    if ! probe && [ -f "$nv_icd" ] && [ "${VK_DRIVER_FILES:-}" != "$nv_icd" ]; then
      # A manifest in the usual folders may name a library the loader cannot open.
      say info "no real GPU through the usual manifests; trying VK_DRIVER_FILES=$nv_icd"
      export VK_DRIVER_FILES=$nv_icd
      for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
        [ -d "$d" ] && export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
      done
      probe
    fi
    timeout 30 "$scratchnet" devices >"$work/devices.txt" 2>&1
    sed 's/^/    /' "$work/devices.txt"
    if [[ $adapter != *'"name"'* || $adapter == *'"emulated":true'* ]]; then
      # What the Vulkan loader tried, for the next session to act on.
      echo "    Vulkan loader's errors and warnings:"
      VK_LOADER_DEBUG=error,warn timeout 30 "$scratchnet" devices 2>&1 >/dev/null | head -20 | sed 's/^/      /'
    fi
    if [[ $adapter == *'"name"'* ]]; then
      name=$(sed 's/.*"name":"\([^"]*\)".*/\1/' <<<"$adapter")
      if [[ $adapter == *'"emulated":true'* ]]; then
        say WARN "scratchnet's GPU: $name is a CPU emulation, not a GPU$([ "${ALLOW_EMULATED:-0}" = 1 ] || echo ': its benchmark is skipped (ALLOW_EMULATED=1 runs it)')"
        [ "${ALLOW_EMULATED:-0}" = 1 ] && gpu_ok=1
      else
        say ok "scratchnet's GPU: $name"
        gpu_ok=1
      fi
    else
      say MISSING "scratchnet's GPU: no adapter ($(grep -m1 'no GPU' "$work/devices.txt" || echo "$adapter"))"
    fi
  fi

  torch_ok=0
  if ! command -v "$py" >/dev/null; then
    say MISSING "python: no $py"
  elif ! tv=$(timeout 120 "$py" -c 'import numpy, torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")' 2>&1); then
    say MISSING "PyTorch: $py cannot import numpy and torch: $(tail -1 <<<"$tv")"
  else
    read -r tver tcuda tavail tname <<<"$(tail -1 <<<"$tv")"
    if [ "$tavail" = True ]; then
      say ok "PyTorch $tver, CUDA $tcuda: $tname"
      torch_ok=1
    else
      say MISSING "PyTorch $tver has no CUDA device (torch.version.cuda $tcuda, is_available False)"
    fi
  fi
  [ -z "$data" ] && gpu_ok=0 torch_ok=0

  echo "== GPU tests (SCRATCHNET_REQUIRE_GPU=1)"
  # Run from $work: the CLI tests look for ./data/fashion-mnist. The benchmark keeps 200 s.
  tests_rc=skipped kernels_rc=skipped
  if [ $have_cli = 1 ] && [[ $adapter != *'"name"'* ]]; then
    echo "(skipped: no adapter, so every test would fail at once)"
  else
    if [ $have_tests = 1 ] && [ $have_cli = 1 ]; then
      (cd "$work" && SCRATCHNET_REQUIRE_GPU=1 CARGO_BIN_EXE_scratchnet=$scratchnet bounded 150 200 "$gpu_tests" --test-threads 4) \
        >"$res/tests.txt" 2>&1
      tests_rc=$?
      grep -E '^test |^test result|panicked' "$res/tests.txt" | sed 's/^test result/tests\/gpu.rs result/' | head -20
    fi
    if [ $have_kernels = 1 ]; then
      # The kernels against the CPU reference: the library's unit tests whose path names gpu.
      (cd "$work" && SCRATCHNET_REQUIRE_GPU=1 bounded 120 200 "$kernel_tests" gpu) >"$work/kernels.txt" 2>&1
      kernels_rc=$?
      grep -E '^test result|panicked' "$work/kernels.txt" | sed 's/^test result/kernel tests result/' | head -20
      # The host's cost of recording dispatches against the GPU's time to run them.
      rec=$(cd "$work" && bounded 30 200 "$kernel_tests" recording_cost --ignored --nocapture 2>&1 | grep dispatches | tail -1)
      [ -n "$rec" ] && say info "recording_cost: $rec"
      { echo "== kernel tests"; cat "$work/kernels.txt"; } >>"$res/tests.txt"
    fi
  fi
  verdict() { case $1 in 0) echo ok ;; skipped) echo skip ;; *) echo FAIL ;; esac; }
  outcome() { case $1 in skipped) echo skipped ;; 124) echo "timed out" ;; *) echo "exit $1" ;; esac; }
  say "$(verdict "$tests_rc")" "tests/gpu.rs: $(outcome "$tests_rc")"
  say "$(verdict "$kernels_rc")" "GPU kernel unit tests: $(outcome "$kernels_rc")"
  if [ $gpu_ok = 1 ] && [ $have_cli = 1 ] && [ -z "${LIMIT:-}" ]; then
    # The built-in CNN, with its own test-time augmentation: 95.04% on the CPU (the GPU should be
    # within 0.05 point of it).
    echo "== scratchnet evaluate --device gpu (built-in CNN, 10,000 test images)"
    bounded 60 180 "$scratchnet" evaluate --device gpu --json >"$work/eval.json" 2>"$work/eval.err"
    acc=$(grep -o '"accuracy":[0-9.]*' "$work/eval.json" | head -1 | cut -d: -f2)
    if [ -n "$acc" ]; then
      acc=$(printf '%.2f' "$(echo "100 * $acc" | bc -l)")
      say "$([ "$(echo "d = $acc - 95.04; d <= 0.05 && d >= -0.05" | bc)" = 1 ] && echo ok || echo FAIL)" \
        "built-in CNN on the GPU: test accuracy $acc% (95.04% on the CPU)"
    else
      say FAIL "scratchnet evaluate --device gpu: $(tail -2 "$work/eval.err")"
    fi
  fi

  echo "== benchmark: $rounds alternating rounds of bench --device gpu and pytorch_reference.py --device cuda ($keys)"
  only=$(tr ' ' ',' <<<"$keys")
  ours_args=(--device gpu --only "$only" ${LIMIT:+--limit "$LIMIT"})
  [ $have_bench = 1 ] || gpu_ok=0
  : >"$res/bench-raw.txt"
  if [ $gpu_ok = 0 ] && [ $torch_ok = 0 ]; then
    echo "(nothing to time: neither side can run; see the checks above)"
    rounds=0
  fi
  for round in $(seq "$rounds"); do
    # A round needs ~60 s on an H200; an unfinished one would skew nothing but is wasted time.
    if [ "$(left)" -lt 45 ]; then
      echo "(stopped before round $round: the budget of $budget s is spent)"
      break
    fi
    if [ $gpu_ok = 1 ]; then
      bounded 120 0 "$bench" "${ours_args[@]}" >"$work/ours.$round" 2>"$work/err.ours.$round" ||
        echo "round $round: bench $(failed $?): $(tail -2 "$work/err.ours.$round" | tr '\n' ' ')"
      { echo "# round $round: bench ${ours_args[*]}"; cat "$work/ours.$round" "$work/err.ours.$round"; } >>"$res/bench-raw.txt"
    fi
    if [ $torch_ok = 1 ]; then
      bounded 120 0 "$py" bench/pytorch_reference.py --device cuda --only "$only" --data "$data" \
        >"$work/torch.$round" 2>"$work/err.torch.$round" ||
        echo "round $round: pytorch_reference.py $(failed $?): $(tail -2 "$work/err.torch.$round" | tr '\n' ' ')"
      { echo "# round $round: pytorch_reference.py --device cuda --only $only"; cat "$work/torch.$round" "$work/err.torch.$round"; } >>"$res/bench-raw.txt"
    fi
    echo "round $round done at ${SECONDS}s: $(awk '$1 != "threads" && $2 ~ /^[0-9.]+$/ {printf "%s %s  ", $1, $2}' "$work/ours.$round" 2>/dev/null)| torch: $(awk '$1 != "threads" && $2 ~ /^[0-9.]+$/ {printf "%s %s  ", $1, $2}' "$work/torch.$round" 2>/dev/null)"
  done

  # As bench/compare.sh: medians over the rounds, ratio, GFLOP/s and share of the fp32 GEMM ceiling.
  median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
  get() { cat "$work"/$1.[0-9]* 2>/dev/null | awk -v k="$2" '$1==k {print $2}' | median; }
  declare -A mflop=([cnn_train]=118.6 [cnn_infer]=39.66 [mlp_train]=0.4544 [mlp_sgd_train]=0.4544)
  # Issue 13's targets, as scratchnet / PyTorch eager.
  declare -A target=([cnn_train]=1.0 [mlp_train]=2.0)
  {
    ceiling=$(get torch sgemm_ceiling)
    echo "== summary$(grep -h -m1 '^# ' "$work"/torch.[0-9]* 2>/dev/null | head -1 | sed 's/^# /: PyTorch on /')"
    echo "scratchnet: ${name:-no GPU adapter}; fp32 GEMM ceiling (cuBLAS 4096^3, no TF32): ${ceiling:-n/a} GFLOP/s"
    printf '%-10s %11s %11s %7s %12s %16s %16s\n' benchmark scratchnet pytorch ratio target "ours GFLOP/s" "pytorch GFLOP/s"
    for key in $keys; do
      ours=$(get ours "$key") theirs=$(get torch "$key")
      ratio=n/a go=n/a gt=n/a po="" pt="" meets=""
      [ -n "$ours" ] && go=$(printf '%.1f' "$(echo "$ours * ${mflop[$key]} / 1000" | bc -l)")
      [ -n "$theirs" ] && gt=$(printf '%.1f' "$(echo "$theirs * ${mflop[$key]} / 1000" | bc -l)")
      if [ -n "$ceiling" ]; then
        [ -n "$ours" ] && po=$(printf ' (%.1f%%)' "$(echo "100 * $go / $ceiling" | bc -l)")
        [ -n "$theirs" ] && pt=$(printf ' (%.1f%%)' "$(echo "100 * $gt / $ceiling" | bc -l)")
      fi
      if [ -n "$ours" ] && [ -n "$theirs" ]; then
        ratio=$(printf '%.2f' "$(echo "$ours / $theirs" | bc -l)")
        [ -n "${target[$key]:-}" ] && meets=$([ "$(echo "$ratio >= ${target[$key]}" | bc)" = 1 ] && echo " met" || echo " missed")
      fi
      printf '%-10s %11s %11s %7s %12s %16s %16s\n' "$key" "${ours:-n/a}" "${theirs:-n/a}" "$ratio" \
        "${target[$key]:+>=${target[$key]}}$meets" "$go$po" "$gt$pt"
    done
    echo "(images/s, medians of $(ls "$work" | grep -c '^ours\.') + $(ls "$work" | grep -c '^torch\.') alternating runs${LIMIT:+, scratchnet with --limit $LIMIT}; batch 64; cnn_infer: the 10,000 test images, probabilities read back per batch; $(date -u +%F))"
    echo "checks:"
    sed 's/^/  /' "$res/checks.txt"
    command -v nvidia-smi >/dev/null &&
      echo "after: $(timeout 10 nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader 2>&1 | head -1) (SM clock, memory clock, temperature, power)"
    echo "total ${SECONDS}s; files in $res"
  } >"$res/summary.txt"
  cat "$res/summary.txt"
}

res=${OUT:-$repo/gpu-results}
mkdir -p "$res"
# Everything printed also goes to log.txt (at most 8 files come back from the device tool).
main "$@" 2>&1 | tee "$res/log.txt"
