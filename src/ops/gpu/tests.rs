//! Every GPU kernel against the CPU kernel on random data and odd geometries: element-wise ops,
//! pooling and masks bit-identical; products and reductions within a relative 1e-5 of the scale of
//! their terms; and repeated GPU runs bit-identical to each other.
//!
//! Without an adapter the tests pass, saying once that they were skipped, unless
//! SCRATCHNET_REQUIRE_GPU=1 (CI sets it, with Mesa's lavapipe installed).

use super::*;
use crate::ops::cpu;
use crate::rng::Rng;
use std::sync::OnceLock;

/// One context for the whole module: pipelines compile once, tests share them.
fn gpu() -> Option<Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    match GPU.get_or_init(|| Gpu::new().map_err(|e| e.to_string())) {
        Ok(g) => Some(g.clone()),
        Err(e) if std::env::var("SCRATCHNET_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("SCRATCHNET_REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            say_skipped(e);
            None
        }
    }
}

/// Once per test binary, on stderr itself (the harness captures `eprintln!` of passing tests):
/// without it, every GPU test would pass in silence on a machine without an adapter.
fn say_skipped(why: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "GPU kernel tests SKIPPED: no GPU adapter ({why}); SCRATCHNET_REQUIRE_GPU=1 makes this a failure"
        );
    });
}

fn randn(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

/// Values from a few levels, so that ties and exact zeros occur.
fn coarse(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * 2.0).round() * 0.5).collect()
}

#[track_caller]
fn bits_eq(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    for (i, (a, b)) in gpu.iter().zip(cpu).enumerate() {
        assert!(a.to_bits() == b.to_bits() || a == b, "{what}[{i}]: gpu {a} vs cpu {b}");
    }
}

/// Largest |gpu - cpu| / scale[i] over the elements, where scale is the sum of the magnitudes of
/// the terms that made each value (so cancellation does not inflate the error).
#[track_caller]
fn rel_close(what: &str, gpu: &[f32], cpu: &[f32], scale: &[f32], tol: f32) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let mut worst = 0.0f32;
    for (i, ((a, b), s)) in gpu.iter().zip(cpu).zip(scale).enumerate() {
        let e = (a - b).abs() / s.max(f32::MIN_POSITIVE);
        assert!(e <= tol, "{what}[{i}]: gpu {a} vs cpu {b} (scale {s}, relative {e:e} > {tol:e})");
        worst = worst.max(e);
    }
    eprintln!("{what}: max relative error {worst:.2e}");
    worst
}

#[test]
fn adapters_are_listed_and_the_context_round_trips() {
    let Some(gpu) = gpu() else { return };
    let list = Gpu::adapters();
    assert!(!list.is_empty());
    assert_eq!(list[0].name, gpu.summary().name);
    eprintln!("{:?}", gpu.summary());
    let data: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 3.0).collect();
    let b = gpu.upload(&data).unwrap();
    assert_eq!(b.len(), 1000);
    assert_eq!(gpu.download(&b).unwrap(), data);
    assert_eq!(gpu.download_range(&b, 10..20).unwrap(), data[10..20]);
    let z = gpu.zeros(7).unwrap();
    assert_eq!(gpu.download(&z).unwrap(), vec![0.0; 7]);
    let labels = gpu.upload_u32(&[3, 1, 4, 1, 5]).unwrap();
    assert_eq!(gpu.download_u32(&labels).unwrap(), [3, 1, 4, 1, 5]);
    let empty = gpu.upload(&[]).unwrap();
    assert!(gpu.download(&empty).unwrap().is_empty());
    // A write lands between the kernels recorded before and after it.
    let y = gpu.zeros(4).unwrap();
    fill(&y, 4, 1.0).unwrap();
    let snapshot = gpu.zeros(4).unwrap();
    copy(&y, 0, &snapshot, 0, 4).unwrap();
    gpu.write(&y, &[5.0, 6.0]).unwrap();
    axpy(2.0, &snapshot, 4, &y).unwrap();
    assert_eq!(gpu.download(&y).unwrap(), [7.0, 8.0, 3.0, 3.0]);
    assert_eq!(gpu.download(&snapshot).unwrap(), [1.0; 4]);
    gpu.flush().unwrap();
}

#[test]
fn errors_are_reported_not_panics() {
    let Some(gpu) = gpu() else { return };
    let huge = gpu.summary().max_buffer_size / 4 + 1;
    assert!(matches!(gpu.zeros(huge as usize), Err(crate::Error::Gpu(_))));
    let a = gpu.upload(&[1.0; 4]).unwrap();
    // An output also bound as an input.
    assert!(mul(&a, &a, 4, &a).is_err());
    // Lengths past the buffer.
    assert!(leaky_relu(&a, 5, 0.0, &gpu.zeros(8).unwrap()).is_err());
    assert!(gpu.download_range(&a, 2..5).is_err());
    // A shader that does not compile.
    let bad = gpu.kernel("bad", "main", || "@compute @workgroup_size(1) fn main( {".to_string());
    assert!(matches!(bad, Err(crate::Error::Gpu(_))));
    assert!(crate::tensor::gpu::fault(&gpu).is_none(), "errors caught where they happened");
}

/// A device lost mid-run: every later call is an error, none panics.
#[test]
fn a_lost_device_gives_errors() {
    if gpu().is_none() {
        return;
    }
    let gpu = Gpu::new().unwrap();
    let (x, y) = (gpu.upload(&[1.0, -2.0]).unwrap(), gpu.zeros(2).unwrap());
    leaky_relu(&x, 2, 0.5, &y).unwrap();
    crate::tensor::gpu::lose(&gpu);
    let results = [
        leaky_relu(&x, 2, 0.5, &y).map(|_| ()),
        gpu.flush(),
        gpu.download(&y).map(|_| ()),
        gpu.upload(&[1.0]).map(|_| ()),
        gpu.write(&y, &[1.0]),
        gpu.download(&y).map(|_| ()),
    ];
    for (i, r) in results.iter().enumerate() {
        eprintln!("after the loss, call {i}: {r:?}");
    }
    assert!(results[2].is_err() && results[5].is_err());
    for r in &results[1..] {
        let msg = r.as_ref().unwrap_err().to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

/// More dispatches than one submission's parameter slots: they are submitted in order.
#[test]
fn long_recordings_are_submitted_in_order() {
    let Some(gpu) = gpu() else { return };
    let (x, y) = (gpu.upload(&[1.0, 2.0, 3.0]).unwrap(), gpu.zeros(3).unwrap());
    for i in 0..2500 {
        axpy(if i % 2 == 0 { 1.0 } else { -0.5 }, &x, 3, &y).unwrap();
    }
    assert_eq!(gpu.download(&y).unwrap(), [625.0, 1250.0, 1875.0]);
}

#[test]
fn elementwise_ops_match_the_cpu_bit_for_bit() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(1);
    for n in [1, 7, 256, 1000, 4099] {
        let x = coarse(n, &mut rng);
        let x2 = randn(n, &mut rng);
        let (gx, gx2, gy) = (gpu.upload(&x).unwrap(), gpu.upload(&x2).unwrap(), gpu.zeros(n + 3).unwrap());
        let mut want = vec![0.0; n];
        for slope in [0.0, 0.01, 0.2] {
            cpu::elementwise::leaky_relu(&x, slope, &mut want);
            leaky_relu(&gx, n, slope, &gy).unwrap();
            bits_eq("leaky_relu", &gpu.download_range(&gy, 0..n).unwrap(), &want);
            // Backward from the output y (coarse: many exact zeros).
            cpu::elementwise::leaky_relu_backward(&x, &x2, slope, &mut want);
            leaky_relu_backward(&gx, &gx2, n, slope, &gy).unwrap();
            bits_eq("leaky_relu_backward", &gpu.download_range(&gy, 0..n).unwrap(), &want);
        }
        cpu::elementwise::mul(&x, &x2, &mut want);
        mul(&gx, &gx2, n, &gy).unwrap();
        bits_eq("mul", &gpu.download_range(&gy, 0..n).unwrap(), &want);

        let mut a = x.clone();
        cpu::elementwise::average_into(&mut a, &x2);
        let ga = gpu.upload(&x).unwrap();
        average_into(&ga, &gx2, n).unwrap();
        bits_eq("average_into", &gpu.download(&ga).unwrap(), &a);

        copy(&gx2, 0, &gy, 3, n).unwrap();
        bits_eq("copy", &gpu.download_range(&gy, 3..n + 3).unwrap(), &x2);
        fill(&gy, n, -2.5).unwrap();
        bits_eq("fill", &gpu.download_range(&gy, 0..n).unwrap(), &vec![-2.5; n]);
    }
}

#[test]
fn bias_and_row_sums_match_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(2);
    for (rows, cols) in [(1, 1), (1, 10), (64, 10), (3, 257), (129, 33)] {
        let y = randn(rows * cols, &mut rng);
        let b = randn(cols, &mut rng);
        let (gy, gb) = (gpu.upload(&y).unwrap(), gpu.upload(&b).unwrap());
        let mut want = y.clone();
        cpu::elementwise::add_row_bias(&mut want, &b);
        add_row_bias(&gy, rows, &gb, cols).unwrap();
        bits_eq("add_row_bias", &gpu.download(&gy).unwrap(), &want);

        let scale: Vec<f32> = (0..cols).map(|j| (0..rows).map(|r| y[r * cols + j].abs()).sum()).collect();
        let mut db = vec![0.0; cols];
        cpu::elementwise::sum_rows(&y, &mut db);
        let gdb = gpu.upload(&vec![9.0; cols]).unwrap();
        let gy = gpu.upload(&y).unwrap();
        sum_rows(&gy, rows, cols, &gdb).unwrap();
        rel_close("sum_rows", &gpu.download(&gdb).unwrap(), &db, &scale, 1e-6);

        let start = randn(cols, &mut rng);
        let mut db = start.clone();
        cpu::elementwise::add_sum_rows(&y, 0.3, &mut db);
        let gdb = gpu.upload(&start).unwrap();
        add_sum_rows(&gy, rows, cols, 0.3, &gdb).unwrap();
        let scale: Vec<f32> = scale.iter().zip(&start).map(|(s, b)| 0.3 * s + b.abs()).collect();
        rel_close("add_sum_rows", &gpu.download(&gdb).unwrap(), &db, &scale, 1e-6);
    }
}

#[test]
fn dropout_mask_is_the_cpus_bit_for_bit() {
    let Some(gpu) = gpu() else { return };
    let mut data_rng = Rng::new(3);
    for (n, p) in [(1, 0.5), (1000, 0.1), (70_000, 0.5), (4099, 0.25)] {
        let x = randn(n, &mut data_rng);
        let (mut mask, mut y) = (vec![0.0; n], vec![0.0; n]);
        let (mut cpu_rng, mut gpu_rng) = (Rng::new(n as u64), Rng::new(n as u64));
        cpu::elementwise::dropout(&x, p, &mut cpu_rng, &mut mask, &mut y);
        let (gx, gm, gy) = (gpu.upload(&x).unwrap(), gpu.zeros(n).unwrap(), gpu.zeros(n).unwrap());
        dropout(&gx, n, p, &mut gpu_rng, &gm, &gy).unwrap();
        bits_eq("dropout mask", &gpu.download(&gm).unwrap(), &mask);
        bits_eq("dropout y", &gpu.download(&gy).unwrap(), &y);
        assert_eq!(cpu_rng, gpu_rng, "both drew one key");
    }
}

#[test]
fn flip_width_mirrors_rows() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(4);
    for (rows, w) in [(1, 1), (3, 2), (5, 7), (2 * 3 * 5, 28), (4, 1)] {
        let x = randn(rows * w, &mut rng);
        let mut want = x.clone();
        cpu::elementwise::reverse_rows(&mut want, w);
        let g = gpu.upload(&x).unwrap();
        flip_width(&g, rows * w, w).unwrap();
        bits_eq("flip_width", &gpu.download(&g).unwrap(), &want);
    }
}

fn mat(d: &[f32], rows: usize, cols: usize, trans: bool) -> cpu::gemm::Mat<'_> {
    let x = cpu::gemm::Mat::new(d, rows, cols);
    if trans { x.t() } else { x }
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter().map(|t| t.iter().map(|x| x.to_bits()).collect()).collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// c = op(a)·op(b) on the CPU, any strides (the reference for products and their scales).
fn naive(a: cpu::gemm::Mat, b: cpu::gemm::Mat) -> Vec<f32> {
    let mut c = vec![0.0; a.rows * b.cols];
    for i in 0..a.rows {
        for j in 0..b.cols {
            c[i * b.cols + j] = (0..a.cols)
                .map(|p| a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64)
                .sum::<f64>() as f32;
        }
    }
    c
}

#[test]
fn matmul_matches_the_cpu_for_every_transpose() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(5);
    let mut worst = 0.0f32;
    for (m, n, k) in [
        (1, 1, 1),
        (1, 37, 5),
        (1, 130, 70),
        (5, 1, 9),
        (67, 65, 33),
        (128, 64, 17),
        (3, 20, 0),
        (64, 10, 300),
        (100, 3, 129),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (accumulate, s) in [(false, 1.0), (true, -0.3)] {
                let (a_off, c_off) = (5, 3);
                let a = randn(a_off + m * k, &mut rng);
                let b = randn(k * n, &mut rng);
                let c0 = randn(c_off + m * n, &mut rng);
                // Stored shapes: a (m, k) or (k, m) when transposed.
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let mut want = c0[c_off..].to_vec();
                cpu::gemm::gemm_par(mat(&a[a_off..], ar, ac, ta), mat(&b, br, bc, tb), &mut want, accumulate, s);
                let terms = naive(mat(&abs(&a[a_off..]), ar, ac, ta), mat(&abs(&b), br, bc, tb));
                let scale: Vec<f32> = terms
                    .iter()
                    .zip(&c0[c_off..])
                    .map(|(t, c)| s.abs() * t + if accumulate { c.abs() } else { 0.0 })
                    .collect();

                let (ga, gb, gc) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap(), gpu.upload(&c0).unwrap());
                let gm = |buf, r, c, t| {
                    let x = GpuMat::new(buf, r, c);
                    if t { x.t() } else { x }
                };
                matmul(gm(&ga, ar, ac, ta).at(a_off), gm(&gb, br, bc, tb), &gc, c_off, accumulate, s).unwrap();
                let got = gpu.download(&gc).unwrap();
                assert_eq!(got[..c_off], c0[..c_off], "values before the output untouched");
                let what = format!("matmul {m}x{n}x{k} t{}{} acc {accumulate}", ta as u8, tb as u8);
                let e = rel_close(&what, &got[c_off..], &want, &scale, 1e-5);
                worst = worst.max(e);
            }
        }
    }
    eprintln!("matmul: max relative error {worst:.2e}");
}

/// Both tile sizes sum each output in the same order: the same bits.
#[test]
fn tile_sizes_give_the_same_bits() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(12);
    let (m, n, k) = (130, 70, 300);
    let (a, b) = (gpu.upload(&randn(m * k, &mut rng)).unwrap(), gpu.upload(&randn(k * n, &mut rng)).unwrap());
    let run = |t| {
        let c = gpu.zeros(m * n).unwrap();
        gemm::matmul_tiles(GpuMat::new(&a, m, k), GpuMat::new(&b, n, k).t(), &c, 0, false, 0.7, t).unwrap();
        gpu.download(&c).unwrap()
    };
    let (two, four) = (run(2), run(4));
    assert!(two.iter().zip(&four).all(|(u, v)| u.to_bits() == v.to_bits()));
}

/// Odd geometries: padding 0/1/2, odd sizes, k = 2, 3, 5, strides 1, 2 and 3.
const CONV_GEOMS: [Conv2dGeom; 9] = [
    Conv2dGeom { c: 1, h: 7, w: 9, f: 4, k: 3, stride: 1, pad: 0 },
    Conv2dGeom { c: 2, h: 8, w: 8, f: 5, k: 3, stride: 2, pad: 1 },
    Conv2dGeom { c: 3, h: 9, w: 7, f: 3, k: 5, stride: 1, pad: 2 },
    Conv2dGeom { c: 4, h: 6, w: 5, f: 6, k: 2, stride: 2, pad: 0 },
    Conv2dGeom { c: 1, h: 28, w: 28, f: 8, k: 3, stride: 1, pad: 0 },
    Conv2dGeom { c: 5, h: 10, w: 11, f: 7, k: 5, stride: 2, pad: 2 },
    Conv2dGeom { c: 8, h: 7, w: 7, f: 3, k: 3, stride: 1, pad: 1 },
    Conv2dGeom { c: 3, h: 5, w: 5, f: 2, k: 5, stride: 1, pad: 0 },
    Conv2dGeom { c: 2, h: 4, w: 4, f: 3, k: 3, stride: 3, pad: 1 },
];

use crate::ops::{Conv2dGeom, ConvAlgorithm};

#[test]
fn conv2d_forward_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(6);
    // The last case is large enough for 64 x 64 tiles.
    let cases = CONV_GEOMS.iter().flat_map(|&g| [(g, 1), (g, 3)]).chain([(CONV_GEOMS[4], 6)]);
    for (g, n) in cases {
        let x = randn(n * g.in_len(), &mut rng);
        let w = randn(g.f * g.patch_len(), &mut rng);
        let b = randn(g.f, &mut rng);
        let scale = cpu::conv::forward_direct(&abs(&x), &abs(&w), &abs(&b), &g, n);
        let (gx, gw, gb, gy) = (
            gpu.upload(&x).unwrap(),
            gpu.upload(&w).unwrap(),
            gpu.upload(&b).unwrap(),
            gpu.zeros(n * g.out_len()).unwrap(),
        );
        for slope in [None, Some(0.01)] {
            let mut want = vec![0.0; n * g.out_len()];
            let mut s = cpu::conv::ConvScratch::default();
            cpu::conv::forward(&x, &w, &b, &g, n, ConvAlgorithm::Im2col, slope, &mut s, &mut want);
            conv2d(&gx, &gw, &gb, n, &g, slope, &gy).unwrap();
            let what = format!("conv2d n={n} {g:?} act {}", slope.is_some());
            rel_close(&what, &gpu.download(&gy).unwrap(), &want, &scale, 1e-5);
        }
    }
}

/// The CPU's backward pass (im2col, the reference) against the GPU's, with `splits` partial sums
/// of the weight gradient when given.
fn conv_backward_case(gpu: &Gpu, g: Conv2dGeom, n: usize, act: bool, splits: Option<usize>, rng: &mut Rng) -> f32 {
    let x = randn(n * g.in_len(), rng);
    let w = randn(g.f * g.patch_len(), rng);
    let b = randn(g.f, rng);
    let dy = randn(n * g.out_len(), rng);
    let slope = 0.1;
    let mut s = cpu::conv::ConvScratch::default();
    let mut y = vec![0.0; dy.len()];
    cpu::conv::forward(&x, &w, &b, &g, n, ConvAlgorithm::Im2col, act.then_some(slope), &mut s, &mut y);
    let grads = |x: &[f32], w: &[f32], y: Option<&[f32]>, dy: &[f32], s: &mut cpu::conv::ConvScratch| {
        let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; g.f], vec![0.0; x.len()]);
        let act = y.map(|y| (slope, y));
        cpu::conv::backward(x, w, act, dy, &g, n, ConvAlgorithm::Im2col, s, &mut dw, &mut db, Some(&mut dx));
        [dw, db, dx]
    };
    let want = grads(&x, &w, act.then_some(&y[..]), &dy, &mut s);
    // Σ|terms|: the same sums over magnitudes (|leaky_relu'| ≤ 1 bounds the activation's factor).
    let scale = grads(&abs(&x), &abs(&w), None, &abs(&dy), &mut s);

    let up = |v: &[f32]| gpu.upload(v).unwrap();
    let (gx, gw, gy, gdy) = (up(&x), up(&w), up(&y), up(&dy));
    let (gdw, gdb, gdx) = (up(&vec![7.0; w.len()]), up(&vec![7.0; g.f]), up(&vec![7.0; x.len()]));
    let gact = act.then_some((slope, &gy));
    match splits {
        Some(k) => conv::backward_split(&gx, &gw, gact, &gdy, n, &g, &gdw, &gdb, Some(&gdx), k).unwrap(),
        None => conv2d_backward(&gx, &gw, gact, &gdy, n, &g, &gdw, &gdb, Some(&gdx)).unwrap(),
    }
    let mut worst = 0.0f32;
    for ((what, got), (want, scale)) in ["dw", "db", "dx"].iter().zip([&gdw, &gdb, &gdx]).zip(want.iter().zip(&scale)) {
        let label = format!("conv2d_backward {what} n={n} act {act} splits {splits:?} {g:?}");
        worst = worst.max(rel_close(&label, &gpu.download(got).unwrap(), want, scale, 1e-5));
    }
    worst
}

#[test]
fn conv2d_backward_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(7);
    let mut worst = 0.0f32;
    for g in CONV_GEOMS {
        for n in [1, 3] {
            for act in [false, true] {
                worst = worst.max(conv_backward_case(&gpu, g, n, act, None, &mut rng));
            }
        }
    }
    // Weight gradients summed in several splits: forced, and chosen by size.
    worst = worst.max(conv_backward_case(&gpu, CONV_GEOMS[2], 3, true, Some(3), &mut rng));
    let big = Conv2dGeom { c: 2, h: 30, w: 30, f: 4, k: 3, stride: 1, pad: 1 };
    assert!(conv::dw_splits(big.f, big.patch_len(), 3 * big.out_plane()) > 1);
    worst = worst.max(conv_backward_case(&gpu, big, 3, false, None, &mut rng));
    // Large enough for 64 x 64 tiles (the input gradient).
    worst = worst.max(conv_backward_case(&gpu, CONV_GEOMS[4], 6, true, None, &mut rng));
    eprintln!("conv2d_backward: max relative error {worst:.2e}");
}

#[test]
fn softmax_and_cross_entropy_match_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(8);
    let (mut worst_p, mut worst_d, mut worst_l) = (0.0f32, 0.0f32, 0.0f32);
    for (rows, k) in [(1, 1), (1, 10), (7, 2), (64, 10), (300, 37), (513, 10)] {
        for (smoothing, coarse_logits) in [(0.0, false), (0.1, true)] {
            let z: Vec<f32> = if coarse_logits {
                coarse(rows * k, &mut rng)
            } else {
                randn(rows * k, &mut rng).iter().map(|v| 3.0 * v).collect()
            };
            let labels: Vec<u32> = (0..rows).map(|_| rng.below(k) as u32).collect();
            let (mut probs, mut dl) = (vec![0.0; rows * k], vec![0.0; rows * k]);
            let loss = cpu::softmax::cross_entropy(&z, &labels, k, smoothing, &mut probs, &mut dl);
            let hits = probs
                .chunks(k)
                .zip(&labels)
                .filter(|(row, y)| {
                    row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b }) == **y as usize
                })
                .count() as u32;

            let (gz, gl) = (gpu.upload(&z).unwrap(), gpu.upload_u32(&labels).unwrap());
            let (gp, gd) = (gpu.zeros(rows * k).unwrap(), gpu.zeros(rows * k).unwrap());
            let (gloss, gcorrect) = (gpu.zeros(4).unwrap(), gpu.upload_u32(&[9; 4]).unwrap());
            softmax_cross_entropy(&gz, &gl, rows, k, smoothing, &gp, &gd, &gloss, &gcorrect, 2).unwrap();
            let what = format!("{rows}x{k} smoothing {smoothing}");
            let got_p = gpu.download(&gp).unwrap();
            worst_p = worst_p.max(rel_close(&format!("ce probs {what}"), &got_p, &probs, &abs(&probs), 1e-5));
            let scale: Vec<f32> = probs.iter().map(|p| (p + 1.0) / rows as f32).collect();
            worst_d =
                worst_d.max(rel_close(&format!("ce dlogits {what}"), &gpu.download(&gd).unwrap(), &dl, &scale, 1e-5));
            let got_loss = gpu.download(&gloss).unwrap()[2];
            worst_l = worst_l.max(rel_close(&format!("ce loss {what}"), &[got_loss], &[loss], &[loss.abs()], 1e-5));
            assert_eq!(gpu.download_u32(&gcorrect).unwrap(), [9, 9, hits, 9], "{what}: correct count");

            let mut want = vec![0.0; rows * k];
            cpu::softmax::softmax(&z, k, &mut want);
            softmax(&gz, rows, k, &gp).unwrap();
            rel_close(&format!("softmax {what}"), &gpu.download(&gp).unwrap(), &want, &abs(&want), 1e-5);

            let best: Vec<u32> = z
                .chunks(k)
                .map(|row| row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b }) as u32)
                .collect();
            let gbest = gpu.zeros(rows).unwrap();
            argmax_rows(&gz, rows, k, &gbest).unwrap();
            assert_eq!(gpu.download_u32(&gbest).unwrap(), best, "argmax_rows {what}");
        }
    }
    eprintln!("cross_entropy: max relative error probs {worst_p:.2e}, dlogits {worst_d:.2e}, loss {worst_l:.2e}");
}

#[test]
fn optimizer_steps_match_the_cpu() {
    use crate::ops::{AdamStep, SgdStep};
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(9);
    let n = 1000;
    let start = randn(n, &mut rng);
    let grads: Vec<Vec<f32>> = (0..3).map(|_| randn(n, &mut rng)).collect();
    let mut worst = 0.0f32;
    let mut check = |what: &str, got: &[f32], want: &[f32]| {
        let scale: Vec<f32> = want.iter().zip(&start).map(|(w, s)| w.abs() + s.abs()).collect();
        let same = got.iter().zip(want).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
        eprintln!("{what}: {same}/{} bit-identical", got.len());
        worst = worst.max(rel_close(what, got, want, &scale, 1e-6));
    };
    for (momentum, nesterov, weight_decay) in
        [(0.0, false, 0.0), (0.0, false, 1e-3), (0.9, false, 0.0), (0.9, true, 5e-4)]
    {
        let h = SgdStep { lr: 0.05, momentum, weight_decay, nesterov };
        let (mut p, mut v) = (start.clone(), vec![0.0; n]);
        let (gp, gv) = (gpu.upload(&start).unwrap(), gpu.zeros(n).unwrap());
        for g in &grads {
            let velocity = (momentum > 0.0).then_some(&mut v[..]);
            cpu::optim::sgd(&mut p, g, velocity, &h);
            sgd_step(&gp, &gpu.upload(g).unwrap(), (momentum > 0.0).then_some(&gv), n, &h).unwrap();
        }
        check(&format!("sgd {h:?}"), &gpu.download(&gp).unwrap(), &p);
    }
    // A velocity decaying into the subnormal range is flushed to zero on both.
    let h = SgdStep { lr: 0.0, momentum: 0.5, weight_decay: 0.0, nesterov: false };
    let mut v = vec![2.0 * f32::MIN_POSITIVE; 4];
    let mut p = vec![1.0; 4];
    cpu::optim::sgd(&mut p, &[0.0; 4], Some(&mut v), &h);
    let gv = gpu.upload(&[2.0 * f32::MIN_POSITIVE; 4]).unwrap();
    sgd_step(&gpu.upload(&[1.0; 4]).unwrap(), &gpu.zeros(4).unwrap(), Some(&gv), 4, &h).unwrap();
    bits_eq("sgd velocity flush", &gpu.download(&gv).unwrap(), &v);
    for (decoupled, weight_decay) in [(false, 0.0), (false, 1e-2), (true, 1e-2)] {
        let (mut p, mut m, mut v) = (start.clone(), vec![0.0; n], vec![0.0; n]);
        let (gp, gm, gv) = (gpu.upload(&start).unwrap(), gpu.zeros(n).unwrap(), gpu.zeros(n).unwrap());
        for (i, g) in grads.iter().enumerate() {
            let h =
                AdamStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, decoupled, step: i as u64 + 1 };
            cpu::optim::adam(&mut p, g, &mut m, &mut v, &h);
            adam_step(&gp, &gpu.upload(g).unwrap(), &gm, &gv, n, &h).unwrap();
        }
        check(&format!("adam decoupled {decoupled} wd {weight_decay}"), &gpu.download(&gp).unwrap(), &p);
    }
    eprintln!("optimizers: max relative error {worst:.2e}");
}

#[test]
fn max_pool_matches_the_cpu_bit_for_bit() {
    use crate::ops::Pool2dGeom;
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(10);
    // Windows that tile, overlap (stride < k) and leave gaps (stride > k); odd sizes.
    for (h, w, k, stride) in [
        (24, 24, 2, 2),
        (7, 9, 3, 2),
        (5, 5, 3, 1),
        (6, 34, 2, 2),
        (8, 3, 2, 2),
        (4, 4, 4, 1),
        (9, 7, 2, 3),
        (1, 1, 1, 1),
    ] {
        for planes in [1, 15] {
            let g = Pool2dGeom { h, w, k, stride };
            let outs = planes * g.oh() * g.ow();
            let x = coarse(planes * h * w, &mut rng);
            let dy = randn(outs, &mut rng);
            let (mut y, mut arg, mut dx) = (vec![0.0; outs], vec![0u32; outs], vec![0.0; x.len()]);
            cpu::pool::forward(&x, &g, &mut y, &mut arg);
            cpu::pool::backward(&dy, &arg, &g, &mut dx);
            let (gx, gy, garg, gdx) = (
                gpu.upload(&x).unwrap(),
                gpu.zeros(outs).unwrap(),
                gpu.zeros(outs).unwrap(),
                gpu.upload(&vec![7.0; x.len()]).unwrap(),
            );
            max_pool2d(&gx, planes, &g, &gy, &garg).unwrap();
            max_pool2d_backward(&gpu.upload(&dy).unwrap(), &garg, planes, &g, &gdx).unwrap();
            let what = format!("max_pool2d {planes}x{h}x{w} k {k} stride {stride}");
            bits_eq(&what, &gpu.download(&gy).unwrap(), &y);
            assert_eq!(gpu.download_u32(&garg).unwrap(), arg, "{what} argmax");
            bits_eq(&format!("{what} backward"), &gpu.download(&gdx).unwrap(), &dx);
        }
    }
}

#[test]
fn average_pooling_matches_the_cpu() {
    use crate::ops::Pool2dGeom;
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(12);
    // Windows that tile, overlap (stride < k) and leave gaps (stride > k); odd sizes; output
    // counts that are not multiples of a workgroup.
    for (h, w, k, stride) in [(24, 24, 2, 2), (7, 9, 3, 2), (5, 5, 3, 1), (9, 7, 2, 3), (4, 4, 4, 1), (1, 1, 1, 1)] {
        for planes in [1, 15] {
            let g = Pool2dGeom { h, w, k, stride };
            let outs = planes * g.oh() * g.ow();
            let x = randn(planes * h * w, &mut rng);
            let dy = randn(outs, &mut rng);
            let (mut y, mut dx) = (vec![0.0; outs], vec![0.0; x.len()]);
            cpu::pool::avg_forward(&x, &g, &mut y);
            cpu::pool::avg_backward(&dy, &g, &mut dx);
            // The sums of the terms' magnitudes.
            let mut dx_scale = vec![0.0; x.len()];
            cpu::pool::avg_backward(&abs(&dy), &g, &mut dx_scale);
            let (gx, gy, gdx) =
                (gpu.upload(&x).unwrap(), gpu.zeros(outs + 5).unwrap(), gpu.upload(&vec![7.0; x.len()]).unwrap());
            avg_pool2d(&gx, planes, &g, &gy).unwrap();
            avg_pool2d_backward(&gpu.upload(&dy).unwrap(), planes, &g, &gdx).unwrap();
            let what = format!("avg_pool2d {planes}x{h}x{w} k {k} stride {stride}");
            // The CPU's order of additions, then one product: the same bits.
            bits_eq(&what, &gpu.download_range(&gy, 0..outs).unwrap(), &y);
            // dy/k² added per window (a product and a sum, which a GPU may fuse).
            rel_close(&format!("{what} backward"), &gpu.download(&gdx).unwrap(), &dx, &dx_scale, 1e-6);
        }
    }
    // Global average pooling: planes of one value, a plane of 784, more planes than a workgroup.
    for (planes, plane) in [(1, 1), (7, 1), (15, 49), (300, 25), (2, 784)] {
        let x = randn(planes * plane, &mut rng);
        let dy = randn(planes, &mut rng);
        let (mut y, mut dx) = (vec![0.0; planes], vec![0.0; x.len()]);
        cpu::pool::mean_planes(&x, plane, &mut y);
        cpu::pool::mean_planes_backward(&dy, plane, &mut dx);
        let (gy, gdx) = (gpu.zeros(planes).unwrap(), gpu.zeros(x.len()).unwrap());
        global_avg_pool(&gpu.upload(&x).unwrap(), planes, plane, &gy).unwrap();
        global_avg_pool_backward(&gpu.upload(&dy).unwrap(), planes, plane, &gdx).unwrap();
        let what = format!("global_avg_pool {planes}x{plane}");
        bits_eq(&what, &gpu.download(&gy).unwrap(), &y);
        bits_eq(&format!("{what} backward"), &gpu.download(&gdx).unwrap(), &dx);
    }
}

/// Batch normalisation: each kernel against the CPU's, fed the same inputs (the CPU's statistics
/// and output), on 1-d batch norms (plane 1), planes of odd sizes, counts per channel past a
/// workgroup's 256 threads, channels past 256, and a mean far from 0. Channel sums are f32 trees
/// on the GPU, f64 on the CPU: within a relative 1e-5 of the sum of the terms' magnitudes.
/// Repeated GPU runs are bit-identical.
#[test]
fn batch_norm_matches_the_cpu() {
    use crate::ops::{self, NormScratch};
    use crate::tensor::Tensor;
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(13);
    let eps = 1e-5;
    let (mut worst_m, mut worst_y, mut worst_g, mut worst_dx) = (0f32, 0f32, 0f32, 0f32);
    for (n, c, plane, offset) in [
        (5, 7, 1, 0.0),
        (7, 513, 1, 0.5),
        (1, 3, 2, 0.0),
        (3, 4, 35, 0.0),
        (4, 2, 300, 5.0),
        (16, 5, 169, -1.0),
        (32, 3, 676, 0.0),
    ] {
        let d = NormDims { n, c, plane };
        let len = n * c * plane;
        let shape = [n, c, plane];
        let host = |v: &[f32], s: &[usize]| Tensor::from_vec(s, v.to_vec()).unwrap();
        let up = |v: &[f32]| gpu.upload(v).unwrap();
        let down = |b: &GpuBuffer, n: usize| gpu.download_range(b, 0..n).unwrap();
        let x: Vec<f32> = randn(len, &mut rng).iter().map(|v| 2.0 * v + offset).collect();
        let (gamma, beta, dy) = (randn(c, &mut rng), randn(c, &mut rng), randn(len, &mut rng));
        let (xt, gt, bt) = (host(&x, &shape), host(&gamma, &[c]), host(&beta, &[c]));
        let (gx, gg, gb, gdy) = (up(&x), up(&gamma), up(&beta), up(&dy));
        let mut scratch = NormScratch::default();
        let what = format!("({n}, {c}, {plane})");
        let count = n * plane;

        // Moments.
        let (mut m, mut v) = (Tensor::default(), Tensor::default());
        ops::channel_moments(&xt, c, &mut m, &mut v, &mut scratch).unwrap();
        let (m, v) = (m.to_vec().unwrap(), v.to_vec().unwrap());
        let moments = || {
            let (gm, gv) = (gpu.zeros(c + 1).unwrap(), gpu.zeros(c).unwrap());
            channel_moments(&gx, d, &gm, &gv).unwrap();
            (down(&gm, c), down(&gv, c))
        };
        let (got_m, got_v) = moments();
        let channel = |ch: usize| (0..len).filter(move |i| i / plane % c == ch);
        let m_scale: Vec<f32> = (0..c).map(|ch| channel(ch).map(|i| x[i].abs()).sum::<f32>() / count as f32).collect();
        worst_m = worst_m.max(rel_close(&format!("moments mean {what}"), &got_m, &m, &m_scale, 1e-5));
        worst_m = worst_m.max(rel_close(&format!("moments var {what}"), &got_v, &v, &v, 1e-5));
        assert_eq!(bits(&[got_m, got_v]), bits(&<[_; 2]>::from(moments())), "moments {what}: two runs differ");

        // Running statistics.
        let (r0, r1): (Vec<f32>, Vec<f32>) = (randn(c, &mut rng), randn(c, &mut rng).iter().map(|v| v.abs()).collect());
        let (mut rm, mut rv) = (host(&r0, &[c]), host(&r1, &[c]));
        ops::update_running((&mut rm, &mut rv), (&host(&m, &[c]), &host(&v, &[c])), 0.1, count).unwrap();
        let (grm, grv, gm, gv) = (up(&r0), up(&r1), up(&m), up(&v));
        update_running((&grm, &grv), (&gm, &gv), c, 0.1, count).unwrap();
        let unbias = if count > 1 { count as f32 / (count - 1) as f32 } else { 1.0 };
        let scale: Vec<f32> = r0.iter().zip(&m).map(|(r, b)| 0.9 * r.abs() + 0.1 * b.abs()).collect();
        rel_close(&format!("running mean {what}"), &gpu.download(&grm).unwrap(), &rm.to_vec().unwrap(), &scale, 1e-6);
        let scale: Vec<f32> = r1.iter().zip(&v).map(|(r, b)| 0.9 * r + 0.1 * b * unbias).collect();
        rel_close(&format!("running var {what}"), &gpu.download(&grv).unwrap(), &rv.to_vec().unwrap(), &scale, 1e-6);

        for slope in [None, Some(0.0), Some(0.1)] {
            let what = format!("{what} slope {slope:?}");
            // Forward, with the CPU's statistics.
            let mut y = Tensor::default();
            let (mt, vt) = (host(&m, &[c]), host(&v, &[c]));
            ops::batch_norm(&xt, (&mt, &vt), (&gt, &bt), eps, slope, &mut y, &mut scratch).unwrap();
            let y = y.to_vec().unwrap();
            let gy = gpu.zeros(len + 3).unwrap();
            batch_norm(&gx, d, (&gm, &gv), (&gg, &gb), eps, slope, &gy).unwrap();
            let invstd: Vec<f32> = v.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
            let y_scale: Vec<f32> = (0..len)
                .map(|i| {
                    let ch = i / plane % c;
                    (gamma[ch] * invstd[ch]).abs() * (x[i].abs() + m[ch].abs()) + beta[ch].abs()
                })
                .collect();
            worst_y = worst_y.max(rel_close(&format!("batch_norm {what}"), &down(&gy, len), &y, &y_scale, 1e-5));

            // Backward from the CPU's output.
            let g: Vec<f32> = (0..len).map(|i| dy[i] * if y[i] > 0.0 { 1.0 } else { slope.unwrap_or(1.0) }).collect();
            let sum_g: Vec<f32> = (0..c).map(|ch| channel(ch).map(|i| g[i].abs()).sum()).collect();
            let sum_gx: Vec<f32> = (0..c).map(|ch| channel(ch).map(|i| (g[i] * (x[i] - m[ch])).abs()).sum()).collect();
            let gy = up(&y);
            for batch_stats in [true, false] {
                let what = format!("{what} batch_stats {batch_stats}");
                let (mut dg, mut db, mut dx) = (Tensor::default(), Tensor::default(), Tensor::default());
                ops::batch_norm_backward(
                    &xt,
                    &host(&y, &shape),
                    &host(&dy, &shape),
                    (&mt, &vt),
                    &gt,
                    eps,
                    slope,
                    batch_stats,
                    (&mut dg, &mut db),
                    Some(&mut dx),
                    &mut scratch,
                )
                .unwrap();
                let backward = || {
                    let (gdg, gdb, gdx) = (gpu.zeros(c).unwrap(), gpu.zeros(c).unwrap(), gpu.zeros(len).unwrap());
                    let (stats, grads) = ((&gm, &gv), (&gdg, &gdb));
                    batch_norm_backward(&gx, &gy, &gdy, d, stats, &gg, eps, slope, batch_stats, grads, Some(&gdx))
                        .unwrap();
                    [gpu.download(&gdg).unwrap(), gpu.download(&gdb).unwrap(), gpu.download(&gdx).unwrap()]
                };
                let got = backward();
                let dg_scale: Vec<f32> = sum_gx.iter().zip(&invstd).map(|(s, i)| s * i).collect();
                worst_g =
                    worst_g.max(rel_close(&format!("dgamma {what}"), &got[0], &dg.to_vec().unwrap(), &dg_scale, 1e-5));
                worst_g =
                    worst_g.max(rel_close(&format!("dbeta {what}"), &got[1], &db.to_vec().unwrap(), &sum_g, 1e-5));
                let dx_scale: Vec<f32> = (0..len)
                    .map(|i| {
                        let ch = i / plane % c;
                        let k = (gamma[ch] * invstd[ch]).abs();
                        let stats_terms = if batch_stats {
                            (sum_gx[ch] * invstd[ch] * invstd[ch] * (x[i].abs() + m[ch].abs()) + sum_g[ch])
                                / count as f32
                        } else {
                            0.0
                        };
                        k * (g[i].abs() + stats_terms)
                    })
                    .collect();
                worst_dx =
                    worst_dx.max(rel_close(&format!("dx {what}"), &got[2], &dx.to_vec().unwrap(), &dx_scale, 1e-5));
                assert_eq!(bits(&got), bits(&backward()), "batch_norm_backward {what}: two runs differ");
            }
        }
    }
    eprintln!(
        "batch norm: max relative error moments {worst_m:.2e}, y {worst_y:.2e}, dγ/dβ {worst_g:.2e}, dx {worst_dx:.2e}"
    );
}

#[test]
fn repeated_runs_are_bit_identical() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(11);
    let g = Conv2dGeom { c: 3, h: 30, w: 30, f: 5, k: 3, stride: 1, pad: 1 };
    let n = 3;
    let up = |v: &[f32]| gpu.upload(v).unwrap();
    let (x, w, b) =
        (up(&randn(n * g.in_len(), &mut rng)), up(&randn(g.f * g.patch_len(), &mut rng)), up(&randn(g.f, &mut rng)));
    let dy = up(&randn(n * g.out_len(), &mut rng));
    let (a, bm) = (up(&randn(150 * 70, &mut rng)), up(&randn(70 * 90, &mut rng)));
    let labels = gpu.upload_u32(&(0..150).map(|i| i % 10).collect::<Vec<u32>>()).unwrap();
    let run = || -> Vec<Vec<f32>> {
        let z = |len| gpu.zeros(len).unwrap();
        let (y, dw, db, dx) = (z(n * g.out_len()), z(g.f * g.patch_len()), z(g.f), z(n * g.in_len()));
        conv2d(&x, &w, &b, n, &g, Some(0.01), &y).unwrap();
        conv2d_backward(&x, &w, Some((0.01, &y)), &dy, n, &g, &dw, &db, Some(&dx)).unwrap();
        let c = z(150 * 90);
        matmul(GpuMat::new(&a, 150, 70), GpuMat::new(&bm, 70, 90), &c, 0, false, 1.0).unwrap();
        let (probs, dl, loss, correct) = (z(1500), z(1500), z(1), z(1));
        softmax_cross_entropy(&c, &labels, 150, 10, 0.1, &probs, &dl, &loss, &correct, 0).unwrap();
        [y, dw, db, dx, c, dl, loss].iter().map(|t| gpu.download(t).unwrap()).collect()
    };
    let first = run();
    for _ in 0..2 {
        for (i, (u, v)) in run().iter().zip(&first).enumerate() {
            assert!(u.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits()), "output {i} changed between runs");
        }
    }
}

/// The host's cost of recording a dispatch (run by hand: `-- --ignored --nocapture`).
#[test]
#[ignore]
fn recording_cost() {
    let Some(gpu) = gpu() else { return };
    let (x, y) = (gpu.upload(&[1.0; 64]).unwrap(), gpu.zeros(64).unwrap());
    axpy(1.0, &x, 64, &y).unwrap();
    gpu.download(&y).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            axpy(1.0, &x, 64, &y).unwrap();
        }
        let rec = t.elapsed();
        gpu.download(&y).unwrap();
        eprintln!("1000 dispatches: recorded in {rec:?}, run in {:?} more", t.elapsed() - rec);
    }
}
