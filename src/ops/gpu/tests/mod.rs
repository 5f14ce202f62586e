//! Every GPU kernel against the CPU kernel on random data and odd geometries, one file per op
//! family: element-wise ops, pooling and masks bit-identical; products and reductions within a
//! relative 1e-5 of the scale of their terms; and repeated GPU runs bit-identical to each other.
//!
//! Without an adapter the tests return early and the binary ends with one line counting them
//! (`test_skip`), unless SCRATCHNET_REQUIRE_GPU=1 (CI sets it, with Mesa's lavapipe installed).

use super::*;
use crate::ops::Conv2dGeom;
use crate::ops::cpu;
use crate::rng::Rng;
use std::sync::OnceLock;

mod conv;
mod elementwise;
mod gemm;
mod norm;
mod optim;
mod pool;
mod softmax;

/// One context for the whole module: pipelines compile once, tests share them. None (the test
/// counted as skipped) without an adapter.
fn gpu() -> Option<Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    test_skip::or_skip(GPU.get_or_init(|| Gpu::new().map_err(|e| e.to_string())).clone())
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
