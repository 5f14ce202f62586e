//! Element-wise ops, bias and row sums, dropout masks, flips.

use super::*;

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
