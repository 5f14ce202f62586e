use super::weight_grad::accumulate_weight_grad_in;
use super::*;
use crate::ops::cpu::simd::levels_here;
use crate::rng::Rng;

/// Every vector level this CPU runs against plain loops, and the levels against each other
/// bit for bit: odd and even sizes, padding, rows around the vector widths, with and without
/// bias and activation; the pooled output against pooling the output.
#[test]
fn every_level_matches_plain_loops_and_the_others_exactly() {
    let mut rng = Rng::new(9);
    for (kc, m, h, w, pad) in [
        (1, 3, 5, 5, 0),
        (3, 9, 8, 19, 1),
        (5, 4, 7, 36, 0),
        (8, 17, 12, 12, 1),
        (2, 2, 3, 70, 2),
        (6, 5, 12, 12, 0),
        (3, 2, 26, 26, 0),
        (4, 3, 11, 7, 0),
        (2, 3, 3, 8, 0),
    ] {
        let inp: Vec<f32> = (0..kc * h * w).map(|_| rng.normal()).collect();
        let g: Vec<f32> = (0..m * kc * 9).map(|_| rng.normal()).collect();
        let bias: Vec<f32> = (0..m).map(|_| rng.normal()).collect();
        let kernel = |i: usize, j: usize| -> [[f32; 3]; 3] {
            std::array::from_fn(|a| std::array::from_fn(|b| g[(i * kc + j) * 9 + 3 * a + b]))
        };
        let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
        let at = |j: usize, y: isize, x: isize| {
            let (y, x) = (y - pad as isize, x - pad as isize);
            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                0.0
            } else {
                inp[(j * h + y as usize) * w + x as usize]
            }
        };
        for (with_bias, slope) in [(false, None), (true, Some(0.01))] {
            let mut reference = vec![0.0f32; m * oh * ow];
            for i in 0..m {
                for y in 0..oh {
                    for x in 0..ow {
                        let mut acc = if with_bias { bias[i] as f64 } else { 0.0 };
                        for j in 0..kc {
                            for (a, row) in kernel(i, j).iter().enumerate() {
                                for (b, &k) in row.iter().enumerate() {
                                    acc += k as f64 * at(j, (y + a) as isize, (x + b) as isize) as f64;
                                }
                            }
                        }
                        let v = acc as f32;
                        reference[(i * oh + y) * ow + x] = match slope {
                            Some(s) => v.max(0.0) + s * v.min(0.0),
                            None => v,
                        };
                    }
                }
            }
            for tile in [Tile::F2, Tile::F4] {
                let mut packed = Vec::new();
                pack_weights(tile, m, kc, &mut packed, kernel);
                let mut results: Vec<(Level, Vec<f32>)> = Vec::new();
                for level in levels_here() {
                    let mut out = vec![f32::NAN; m * oh * ow];
                    let b = with_bias.then_some(&bias[..]);
                    let mut scratch = Scratch::default();
                    correlate_in(
                        level,
                        tile,
                        &inp,
                        1,
                        (kc, h, w),
                        pad,
                        &packed,
                        m,
                        b,
                        slope,
                        false,
                        &mut scratch,
                        &mut out,
                    );
                    for (u, v) in out.iter().zip(&reference) {
                        assert!(
                            (u - v).abs() <= 1e-4 * (1.0 + v.abs()),
                            "{level:?} {tile:?}: {u} vs {v}, {kc} {m} {h}x{w} pad {pad}"
                        );
                    }
                    // Three copies of the image multiplied together: each the same bits as alone.
                    let copies = inp.repeat(3);
                    let mut out3 = vec![f32::NAN; 3 * m * oh * ow];
                    let dims = (kc, h, w);
                    correlate_in(
                        level,
                        tile,
                        &copies,
                        3,
                        dims,
                        pad,
                        &packed,
                        m,
                        b,
                        slope,
                        false,
                        &mut scratch,
                        &mut out3,
                    );
                    for (n, copy) in out3.chunks(m * oh * ow).enumerate() {
                        let same = copy.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{level:?} {tile:?} image {n} of 3: {kc} {m} {h}x{w} pad {pad}");
                    }
                    // Pooled in the output transform: the 2x2 maxima of `out`, bit for bit.
                    let (ph, pw) = (oh / 2, ow / 2);
                    let mut pooled = vec![f32::NAN; 3 * m * ph * pw];
                    correlate_in(
                        level,
                        tile,
                        &copies,
                        3,
                        dims,
                        pad,
                        &packed,
                        m,
                        b,
                        slope,
                        true,
                        &mut scratch,
                        &mut pooled,
                    );
                    for n in 0..3 {
                        for i in 0..m {
                            for y in 0..ph {
                                for x in 0..pw {
                                    let at = |a: usize, b: usize| out[(i * oh + 2 * y + a) * ow + 2 * x + b];
                                    let want = at(0, 0).max(at(0, 1)).max(at(1, 0).max(at(1, 1)));
                                    let got = pooled[((n * m + i) * ph + y) * pw + x];
                                    assert_eq!(
                                        got.to_bits(),
                                        want.to_bits(),
                                        "{level:?} {tile:?} pooled ({n}, {i}, {y}, {x}): {kc} {m} {h}x{w} pad {pad}"
                                    );
                                }
                            }
                        }
                    }
                    if let Some((first, y)) = results.first() {
                        let same = y.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{first:?} vs {level:?} {tile:?}: {kc} {m} {h}x{w} pad {pad}");
                    }
                    results.push((level, out));
                }
            }
        }
    }
}

/// The weight gradient, F(3x3, 2x2), at every level against plain loops over two images
/// (accumulated, then added onto existing values), and the levels against each other bit for
/// bit: odd and even sizes, padding, channel counts around the vector widths.
#[test]
fn weight_gradient_at_every_level_matches_plain_loops_and_the_others_exactly() {
    let mut rng = Rng::new(10);
    for (kc, m, h, w, pad) in [
        (1, 3, 5, 5, 0),
        (3, 9, 8, 19, 1),
        (8, 17, 12, 12, 1),
        (2, 2, 3, 70, 2),
        (6, 5, 12, 12, 0),
        (32, 64, 26, 26, 0),
        (64, 128, 12, 12, 0),
        (4, 3, 11, 7, 0),
        (5, 40, 7, 6, 1),
    ] {
        let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
        let n = 2;
        let inp: Vec<f32> = (0..n * kc * h * w).map(|_| rng.normal()).collect();
        let dy: Vec<f32> = (0..n * m * oh * ow).map(|_| rng.normal()).collect();
        let dw0: Vec<f32> = (0..m * kc * 9).map(|_| rng.normal()).collect();
        let at = |img: usize, j: usize, y: usize, x: usize| {
            let (y, x) = (y as isize - pad as isize, x as isize - pad as isize);
            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                0.0
            } else {
                inp[((img * kc + j) * h + y as usize) * w + x as usize]
            }
        };
        let mut reference = dw0.clone();
        for i in 0..m {
            for j in 0..kc {
                for t in 0..9 {
                    let (a, b) = (t / 3, t % 3);
                    let mut sum = 0.0f64;
                    for img in 0..n {
                        for y in 0..oh {
                            for x in 0..ow {
                                let d = dy[((img * m + i) * oh + y) * ow + x] as f64;
                                sum += d * at(img, j, y + a, x + b) as f64;
                            }
                        }
                    }
                    reference[(i * kc + j) * 9 + t] += sum as f32;
                }
            }
        }
        let scale = reference.iter().fold(0.0f32, |s, v| s.max(v.abs()));
        let mut first: Option<(Level, Vec<f32>)> = None;
        for level in levels_here() {
            let mut scratch = Scratch::default();
            let mut acc = vec![0.0f32; 16 * kc * m];
            for img in 0..n {
                let x = &inp[img * kc * h * w..(img + 1) * kc * h * w];
                let d = &dy[img * m * oh * ow..(img + 1) * m * oh * ow];
                accumulate_weight_grad_in(level, x, (kc, h, w), pad, d, m, &mut scratch, &mut acc);
            }
            let mut dw = dw0.clone();
            add_weight_grad(&acc, kc, m, &mut dw);
            for (u, v) in dw.iter().zip(&reference) {
                assert!(
                    (u - v).abs() <= 1e-4 * (1.0 + v.abs()) + 1e-5 * scale,
                    "{level:?}: {u} vs {v}, {kc} {m} {h}x{w} pad {pad}"
                );
            }
            match &first {
                Some((l, d)) => assert!(
                    d.iter().zip(&dw).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{l:?} vs {level:?}: {kc} {m} {h}x{w} pad {pad}"
                ),
                None => first = Some((level, dw)),
            }
        }
    }
}
