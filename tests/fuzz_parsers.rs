//! Bounded fuzzing on stable Rust, run by `cargo test --release`: random and mutated inputs for
//! the parsers of untrusted bytes (IDX raw and gzip, Kaggle CSV, model files, state_dicts and the
//! original project's pickled networks to import). Each input must give a value or an error: never a panic, and never an allocation out
//! of proportion to the input (a header's claim is compared with the data, not allocated). The
//! cargo-fuzz targets in fuzz/ run the same checks under libFuzzer on nightly.
//!
//! `SCRATCHNET_FUZZ_ITERS=N` sets the inputs per parser (default 100,000, a few seconds in all);
//! `SCRATCHNET_FUZZ_SEED=S` another deterministic stream. A failing input is written to
//! `target/fuzz-failures/` and named in the failure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use scratchnet::Rng;
use scratchnet::data::{csv, gz, idx};
use scratchnet::model::{LayerSpec, ModelSpec, Sequential, Tta};
use scratchnet::model_file::{self, InputNorm, ModelInfo};

// ---- The largest single allocation request, per thread ----

/// Above this a request is refused outright (the process aborts, naming it) rather than let a
/// parser take the machine's memory; the per-input bound below is far tighter.
const HARD_LIMIT: usize = 1 << 30;

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) -> bool {
    // try_with: the thread's TLS may be gone while it exits; such requests are not parsers'.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    if size > HARD_LIMIT {
        let _ = std::io::stderr().write_all(b"fuzz_parsers: an allocation above 1 GiB was requested\n");
        return false;
    }
    true
}

// SAFETY: every call is passed on unchanged to the system allocator, which upholds the trait's
// contract; tracking reads and writes a const-initialised thread-local Cell and allocates nothing.
// A refused request returns null, which the trait allows for failure.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if !note(l.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's promises about `l` are the ones System.alloc needs.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if !note(l.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for alloc.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from this allocator, i.e. from System, with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if !note(n) {
            return std::ptr::null_mut();
        }
        // SAFETY: `p` came from System with layout `l`; the caller guarantees `n` is valid.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Tracking = Tracking;

// ---- Inputs ----

fn iterations() -> usize {
    std::env::var("SCRATCHNET_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

fn seed(purpose: u64) -> Rng {
    let s = std::env::var("SCRATCHNET_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    Rng::stream(s, purpose)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn seed_files(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Values that break arithmetic: zero, one, sign bits, all ones, near-overflow.
const INTERESTING: [u64; 12] =
    [0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x7fff_ffff_ffff_ffff, u64::MAX];

/// Decimal strings that break parsers: huge, negative, fractional, exponent, empty.
const NUMBERS: [&str; 12] =
    ["0", "1", "255", "256", "-1", "10", "12.0", "4294967296", "18446744073709551616", "1e400", "99999999999", ""];

/// One random change to `b`: a bit flip, a byte set, an interesting value written, a truncation,
/// an insertion, a deletion, a range duplicated, or a splice from `other`.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>, other: &[u8]) {
    let pos = |rng: &mut Rng, b: &Vec<u8>| rng.below(b.len().max(1));
    match rng.below(9) {
        0 if !b.is_empty() => {
            let i = pos(rng, b);
            b[i] ^= 1 << rng.below(8);
        }
        1 if !b.is_empty() => {
            let i = pos(rng, b);
            b[i] = rng.next_u64() as u8;
        }
        2 if !b.is_empty() => {
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let width = [1, 2, 4, 8][rng.below(4)];
            let bytes = if rng.below(2) == 0 { v.to_be_bytes() } else { v.to_le_bytes() };
            let bytes = if rng.below(2) == 0 { &bytes[8 - width..] } else { &bytes[..width] };
            let i = pos(rng, b);
            let n = width.min(b.len() - i);
            b[i..i + n].copy_from_slice(&bytes[..n]);
        }
        3 => {
            let n = rng.below(b.len() + 1);
            b.truncate(n);
        }
        4 => {
            let i = rng.below(b.len() + 1);
            let n = 1 + rng.below(16);
            let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            b.splice(i..i, ins);
        }
        5 if !b.is_empty() => {
            let i = pos(rng, b);
            let n = 1 + rng.below((b.len() - i).min(64));
            b.drain(i..i + n);
        }
        6 if !b.is_empty() && b.len() < 1 << 16 => {
            let i = pos(rng, b);
            let n = 1 + rng.below((b.len() - i).min(256));
            let copy = b[i..i + n].to_vec();
            let at = rng.below(b.len() + 1);
            b.splice(at..at, copy);
        }
        7 if !other.is_empty() => {
            let i = rng.below(other.len());
            let n = 1 + rng.below((other.len() - i).min(256));
            let at = rng.below(b.len() + 1);
            let end = (at + n).min(b.len());
            b.splice(at..end, other[i..i + n].iter().copied());
        }
        _ => {
            // A run of ASCII digits replaced by a number that breaks parsers (text formats).
            let starts: Vec<usize> =
                (0..b.len()).filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit())).collect();
            if let Some(&i) = starts.get(rng.below(starts.len().max(1))) {
                let end = (i..b.len()).find(|&j| !b[j].is_ascii_digit()).unwrap_or(b.len());
                b.splice(i..end, NUMBERS[rng.below(NUMBERS.len())].bytes());
            }
        }
    }
}

/// A seed, or random bytes (one input in 16), with 1-4 mutations stacked.
fn next_input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(16) == 0 {
        let n = rng.below(256);
        return (0..n).map(|_| rng.next_u64() as u8).collect();
    }
    let mut b = seeds[rng.below(seeds.len())].clone();
    let other = &seeds[rng.below(seeds.len())];
    for _ in 0..1 + rng.below(4) {
        mutate(rng, &mut b, other);
    }
    b
}

// ---- The run ----

/// Runs `check` on `n` inputs from `gen`; fails listing the inputs that panicked or allocated
/// more than `bound(len)` bytes at once (saved under target/fuzz-failures/).
fn fuzz(
    name: &str,
    n: usize,
    mut generate: impl FnMut(usize) -> Vec<u8>,
    bound: impl Fn(usize) -> usize,
    check: impl Fn(&[u8]) -> bool,
) {
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut accepted = 0usize;
    for i in 0..n {
        let input = generate(i);
        LARGEST.with(|l| l.set(0));
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let largest = LARGEST.with(Cell::get);
        let problem = match outcome {
            Err(_) => Some("panicked".to_string()),
            Ok(_) if largest > bound(input.len()) => {
                Some(format!("allocated {largest} bytes at once for a {}-byte input", input.len()))
            }
            Ok(ok) => {
                accepted += ok as usize;
                None
            }
        };
        if let Some(p) = problem {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{i}.bin"));
            std::fs::write(&path, &input).unwrap();
            failures.push(format!("input {i} ({}): {p}", path.display()));
            if failures.len() >= 20 {
                break;
            }
        }
    }
    eprintln!(
        "fuzz {name}: {n} inputs in {:.1} s ({accepted} parsed, the rest refused), {} failures",
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{name}: {}", failures.join("\n"));
}

/// Raw parsers copy at most their input; a small constant covers errors and bookkeeping.
fn raw_bound(len: usize) -> usize {
    (1 << 20) + 8 * len
}

/// Deflate inflates at most 1032:1, and growth doubles a buffer once more.
fn gzip_bound(len: usize) -> usize {
    (1 << 20) + 2100 * len
}

#[test]
fn fuzz_idx() {
    let mut seeds = seed_files("idx");
    let mut rng = seed(1);
    for dims in [&[3][..], &[2, 3, 3], &[4, 28, 28], &[1, 2, 2, 2], &[0, 5, 5]] {
        let n: u32 = dims.iter().product();
        let data: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        seeds.push(idx_bytes(dims, &data));
    }
    seeds.push(idx_bytes(&[16], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1]));
    let raw: Vec<Vec<u8>> = seeds.iter().filter(|s| !gz::is_gzip(s)).cloned().collect();
    seeds.extend(raw.iter().map(|s| gzip(s)));
    fuzz(
        "idx",
        iterations(),
        |_| {
            let mut b = next_input(&mut rng, &seeds);
            // One in four: valid gzip around mutated IDX, to reach the bounded inflation's checks.
            if rng.below(4) == 0 {
                b = next_input(&mut rng, &raw);
                b = gzip(&b);
            }
            b
        },
        gzip_bound,
        |b| {
            for a in [idx::read(b, "fuzz"), idx::parse(b, "fuzz")].into_iter().flatten() {
                let n = a.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
                assert_eq!(Some(a.data.len()), n);
            }
            if let Ok(l) = idx::parse_labels(b, "fuzz", 10) {
                assert!(l.iter().all(|&l| l < 10));
            }
            if let Ok((px, h, w)) = idx::parse_images(b, "fuzz") {
                assert!(h > 0 && w > 0 && px.len() % (h * w) == 0);
            }
            if let Ok(bytes) = gz::maybe_inflate(b, "fuzz") {
                let _ = idx::parse(&bytes, "fuzz");
            }
            idx::read(b, "fuzz").is_ok()
        },
    );
}

#[test]
fn fuzz_csv() {
    let mut seeds = seed_files("csv");
    let mut rng = seed(2);
    let mut labels = Vec::new();
    let mut pixels = Vec::new();
    for _ in 0..3 {
        labels.push(rng.below(10) as u8);
        pixels.extend((0..16).map(|_| rng.next_u64() as u8));
    }
    let mut with_header = Vec::new();
    csv::write(&mut with_header, &labels, &pixels, 16).unwrap();
    seeds.push(with_header.clone());
    // No header, pandas' "12.0" floats, CRLF and spaces, a blank line.
    let body = String::from_utf8(with_header).unwrap();
    let no_header: String = body.lines().skip(1).map(|l| format!("{l}\n")).collect();
    seeds.push(no_header.clone().into_bytes());
    seeds.push(no_header.replace(',', ".0,").replace('\n', ".0\r\n").into_bytes());
    seeds.push(b"label, p1 ,p2,p3,p4\n\n1, 2 ,3,4,5 \n".to_vec());
    fuzz(
        "csv",
        iterations(),
        |_| next_input(&mut rng, &seeds),
        raw_bound,
        |b| {
            if let Ok(c) = csv::parse(b, "fuzz", 10) {
                assert!(!c.labels.is_empty() && c.labels.iter().all(|&l| l < 10));
                assert_eq!(c.pixels.len(), c.labels.len() * c.pixels_per_row);
                let side = (c.pixels_per_row as f64).sqrt() as usize;
                assert_eq!(side * side, c.pixels_per_row);
                return true;
            }
            false
        },
    );
}

/// The MLP of the model seeds (also the network the state_dict importer maps them onto).
fn seed_mlp() -> ModelSpec {
    ModelSpec {
        input: [1, 4, 4],
        layers: vec![
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: 16, out_features: 8 },
            LayerSpec::Relu,
            LayerSpec::Dropout { p: 0.25 },
            LayerSpec::Linear { in_features: 8, out_features: 3 },
        ],
    }
}

/// Small model files: those in fuzz/seeds/model_file, and freshly written ones (an MLP, a CNN with
/// tta, a checkpoint-like file with an extra tensor and the shipped MLP's training record).
fn model_seeds() -> Vec<Vec<u8>> {
    let mlp = seed_mlp();
    let cnn = ModelSpec {
        input: [1, 6, 6],
        layers: vec![
            LayerSpec::Conv2d { in_channels: 1, out_channels: 2, kernel_size: 3, stride: 1, padding: 1 },
            LayerSpec::LeakyRelu { negative_slope: 0.01 },
            LayerSpec::MaxPool2d { kernel_size: 2, stride: None },
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: 18, out_features: 2 },
        ],
    };
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fashion-mnist-mlp.safetensors");
    let training = model_file::load(&shipped).ok().and_then(|l| l.info.training);
    let info = |spec: &ModelSpec, tta, training| ModelInfo {
        spec: spec.clone(),
        classes: (0..spec.num_classes().unwrap()).map(|c| format!("class {c}")).collect(),
        dataset: "mnist".into(),
        input: InputNorm::default(),
        training,
        tta,
    };
    let (m, c) = (Sequential::new(mlp.clone(), 1).unwrap(), Sequential::new(cnn.clone(), 2).unwrap());
    let extra = scratchnet::Tensor::zeros(&[2, 3]);
    let mut seeds = seed_files("model_file");
    seeds.extend([
        model_file::to_bytes(&m, &info(&mlp, Tta::None, None), &[], None).unwrap(),
        model_file::to_bytes(&c, &info(&cnn, Tta::HFlip, None), &[], None).unwrap(),
        model_file::to_bytes(
            &m,
            &info(&mlp, Tta::None, training),
            &[("optimizer.m.x".into(), &extra)],
            Some("{}".into()),
        )
        .unwrap(),
    ]);
    seeds
}

/// Rewrites a safetensors file's JSON header with one mutation, fixing its length field, so
/// changes reach the metadata and the spec rather than stopping at the length check.
fn mutate_header(rng: &mut Rng, file: &[u8]) -> Option<Vec<u8>> {
    let n = u64::from_le_bytes(file.get(..8)?.try_into().ok()?) as usize;
    let mut header = file.get(8..8usize.checked_add(n)?)?.to_vec();
    mutate(rng, &mut header, b"\"shape\":[4294967296,0],\"dtype\":\"F64\",\"data_offsets\":[0,18446744073709551615]");
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&file[8 + n..]);
    Some(out)
}

#[test]
fn fuzz_model_file() {
    let seeds = model_seeds();
    let mut rng = seed(3);
    fuzz(
        "model_file",
        iterations(),
        |_| {
            if rng.below(2) == 0 {
                let s = &seeds[rng.below(seeds.len())];
                if let Some(b) = mutate_header(&mut rng, s) {
                    return b;
                }
            }
            next_input(&mut rng, &seeds)
        },
        raw_bound,
        |b| {
            if let Ok(l) = model_file::from_bytes(b, "fuzz") {
                assert_eq!(l.info.classes.len(), l.info.spec.num_classes().unwrap());
                let shapes: Vec<Vec<usize>> = l.info.spec.param_shapes().into_iter().map(|(_, s)| s).collect();
                let found: Vec<Vec<usize>> = l.model.named_params().iter().map(|(_, t)| t.shape().to_vec()).collect();
                assert_eq!(shapes, found);
                return true;
            }
            false
        },
    );
}

/// `scratchnet import`'s parsers (safetensors, torch.save's zip and pickle) on the model seeds and
/// torch.save files mutated, mapped onto the MLP and a batch-norm network: the MLP seeds and
/// tiny-bn.pt map, the rest are refused; never a panic.
#[test]
fn fuzz_state_dict_import() {
    let mut seeds = model_seeds();
    // torch.save files (zip + pickle) from real PyTorch; tiny-bn.pt holds int64 step counters.
    let torch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torch");
    seeds.extend(
        ["tiny.pt", "tiny-half.pt", "tiny-model.pt", "tiny-bn.pt"].map(|f| std::fs::read(torch.join(f)).unwrap()),
    );
    let spec = seed_mlp();
    let bn =
        scratchnet::model::ModelSpec::from_json(&std::fs::read_to_string(torch.join("tiny-bn.json")).unwrap()).unwrap();
    let mut rng = seed(4);
    fuzz(
        "state_dict",
        iterations(),
        |_| {
            if rng.below(2) == 0 {
                let s = &seeds[rng.below(seeds.len())];
                if let Some(b) = mutate_header(&mut rng, s) {
                    return b;
                }
            }
            next_input(&mut rng, &seeds)
        },
        raw_bound,
        |b| {
            // Each input on the MLP and on the batch-norm network (buffers, int64 counters).
            [&spec, &bn].iter().fold(false, |accepted, spec| {
                match scratchnet::import::map_state_dict(b, "fuzz", spec) {
                    Ok(m) => {
                        let found: Vec<Vec<usize>> = m.values.iter().map(|t| t.shape().to_vec()).collect();
                        let shapes: Vec<Vec<usize>> = spec.state_shapes().into_iter().map(|(_, s)| s).collect();
                        assert_eq!(shapes, found);
                        true
                    }
                    Err(_) => accepted,
                }
            })
        },
    );
}

/// The original project's pickled networks (`scratchnet import net.pkl`): the seeds in
/// fuzz/seeds/pickle (tiny networks for 1x6x6 images in protocols 0-5, CuPy-style and Fortran-order
/// arrays) mutated; the seeds import, the rest are refused; never a panic.
#[test]
fn fuzz_original_pickle() {
    let seeds = seed_files("pickle");
    for s in &seeds {
        let net = scratchnet::import::read_original(s, "seed", [1, 6, 6]).unwrap();
        assert_eq!(net.spec.num_classes().unwrap(), 3);
    }
    let mut rng = seed(5);
    fuzz(
        "original_pickle",
        iterations(),
        |_| next_input(&mut rng, &seeds),
        raw_bound,
        |b| match scratchnet::import::read_original(b, "fuzz", [1, 6, 6]) {
            Ok(net) => {
                let shapes: Vec<Vec<usize>> = net.spec.param_shapes().into_iter().map(|(_, s)| s).collect();
                let found: Vec<Vec<usize>> = net.params.iter().map(|t| t.shape().to_vec()).collect();
                assert_eq!(shapes, found);
                true
            }
            Err(_) => false,
        },
    );
}
