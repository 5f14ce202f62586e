//! Batch normalisation's kernels.

use super::*;

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
