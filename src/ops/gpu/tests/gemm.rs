//! Products: every transpose, offsets, accumulation and scale; both tile sizes.

use super::*;

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
        crate::ops::gpu::gemm::matmul_tiles(GpuMat::new(&a, m, k), GpuMat::new(&b, n, k).t(), &c, 0, false, 0.7, t)
            .unwrap();
        gpu.download(&c).unwrap()
    };
    let (two, four) = (run(2), run(4));
    assert!(two.iter().zip(&four).all(|(u, v)| u.to_bits() == v.to_bits()));
}
