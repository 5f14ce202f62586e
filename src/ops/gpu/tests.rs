//! Every GPU kernel against the CPU kernel on random data and odd geometries: element-wise ops,
//! pooling and masks bit-identical; products and reductions within a relative 1e-5 of the scale of
//! their terms; and repeated GPU runs bit-identical to each other.
//!
//! Without an adapter the tests print "skipped: no GPU adapter" and pass, unless
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
        Err(_) => {
            eprintln!("skipped: no GPU adapter");
            None
        }
    }
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
    assert!(device::fault(&gpu).is_none(), "no device error was triggered");
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
