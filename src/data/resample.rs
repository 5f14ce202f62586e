//! Separable resampling of one-channel 8-bit pictures, without the `image` crate (WebAssembly
//! decodes pictures in the browser and hands us pixels). The arithmetic is `image` 0.25's
//! `imageops::resize` step for step (columns first into f32, then rows, each output pixel's weights
//! normalised to sum 1, clamped and rounded to nearest), so `scratchnet predict` gives the same
//! bytes as before; `picture::tests` checks it against `image` on many sizes.

/// The two filters picture preprocessing uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Linear interpolation (support 1).
    Triangle,
    /// Windowed sinc, a = 3 (support 3).
    Lanczos3,
}

impl Filter {
    fn support(self) -> f32 {
        match self {
            Filter::Triangle => 1.0,
            Filter::Lanczos3 => 3.0,
        }
    }

    fn kernel(self, x: f32) -> f32 {
        match self {
            Filter::Triangle => {
                if x.abs() < 1.0 {
                    1.0 - x.abs()
                } else {
                    0.0
                }
            }
            Filter::Lanczos3 => {
                if x.abs() < 3.0 {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(t: f32) -> f32 {
    let a = t * std::f32::consts::PI;
    if t == 0.0 { 1.0 } else { a.sin() / a }
}

/// For each output position along an axis of `len` input pixels resampled to `new_len`: the first
/// input pixel and the normalised weights of the pixels from it on.
fn weights(len: usize, new_len: usize, filter: Filter) -> Vec<(usize, Vec<f32>)> {
    let ratio = len as f32 / new_len as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let src_support = filter.support() * sratio;
    (0..new_len)
        .map(|out| {
            // The output pixel's centre in input coordinates; pixel i is used if left <= i < right.
            let centre = (out as f32 + 0.5) * ratio;
            let left = ((centre - src_support).floor() as i64).clamp(0, len as i64 - 1);
            let right = ((centre + src_support).ceil() as i64).clamp(left + 1, len as i64);
            // The kernel treats a pixel's centre as 0.
            let centre = centre - 0.5;
            let mut ws: Vec<f32> = (left..right).map(|i| filter.kernel((i as f32 - centre) / sratio)).collect();
            let mut sum = 0.0;
            for &w in &ws {
                sum += w;
            }
            for w in &mut ws {
                *w /= sum;
            }
            (left as usize, ws)
        })
        .collect()
}

/// Resamples a `w` x `h` picture (row-major bytes) to `new_w` x `new_h`. An empty picture gives a
/// black one; the same size gives a copy.
pub fn resize(px: &[u8], w: usize, h: usize, new_w: usize, new_h: usize, filter: Filter) -> Vec<u8> {
    assert_eq!(px.len(), w * h, "resize: {w}x{h} picture");
    if w == 0 || h == 0 {
        return vec![0; new_w * new_h];
    }
    if (w, h) == (new_w, new_h) {
        return px.to_vec();
    }
    // Columns: (w, h) bytes -> (w, new_h) floats, not rounded.
    let mut tall = vec![0f32; w * new_h];
    for (y, (top, ws)) in weights(h, new_h, filter).into_iter().enumerate() {
        for x in 0..w {
            let mut t = 0.0f32;
            for (i, &wt) in ws.iter().enumerate() {
                t += px[(top + i) * w + x] as f32 * wt;
            }
            tall[y * w + x] = t;
        }
    }
    // Rows: (w, new_h) floats -> (new_w, new_h) bytes, clamped to 0-255 and rounded.
    let mut out = vec![0u8; new_w * new_h];
    for (x, (left, ws)) in weights(w, new_w, filter).into_iter().enumerate() {
        for y in 0..new_h {
            let mut t = 0.0f32;
            for (i, &wt) in ws.iter().enumerate() {
                t += tall[y * w + left + i] * wt;
            }
            // Weights that sum to 0 (never seen) would give NaN: black, not a panic.
            out[y * new_w + x] = if t.is_nan() { 0 } else { t.clamp(0.0, 255.0).round() as u8 };
        }
    }
    out
}
