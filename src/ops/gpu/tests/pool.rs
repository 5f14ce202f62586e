//! Max pooling (bit for bit, winners included), average and global average pooling.

use super::*;

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
