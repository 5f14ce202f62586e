//! 2-D convolution, batch-parallel: by im2col + GEMM (the original's algorithm, the reference,
//! used for strides above 1) or, for stride 1, by the shifted products of [`super::conv_shift`],
//! which need no im2col / col2im, computed by the fused kernel of [`super::conv_direct`] or by
//! [`super::winograd`] (3x3 kernels) where the CPU has a vector level.
//! [`crate::ops::set_conv_algorithm`] can force any path.
//!
//! Per image: `cols` (c·k·k, oh·ow) holds one input patch per column, so
//!   forward   y_n (f, oh·ow) = w (f, c·k·k) · cols_n + b
//!   backward  dw += dy_n · cols_nᵀ,  db += Σ_p dy_n,  dx_n = col2im(wᵀ · dy_n)
//! Images are grouped in fixed chunks; each chunk has its own scratch (cols, dcols and partial
//! dw/db), so threads never share a buffer, and partial gradients are summed in chunk order.
//! The backward pass rebuilds `cols` instead of keeping it from the forward pass: im2col is cheap
//! next to the products, and the CNN would otherwise hold ~60 MB of patches per batch.

use super::conv_direct;
use super::conv_shift::{self, Direct};
use super::elementwise::{leaky_relu_grad_here, leaky_relu_here};
use super::gemm::{Mat, gemm};
use super::multiversion::multiversion;
use super::par::{for_each_chunk, for_each_chunk2};
use super::winograd::{self, Tile};
use crate::ops::params::{Conv2dGeom, ConvAlgorithm};

/// Shifted products for stride 1. Through `gemm`, only with enough input channels: each tap's
/// product has c as its inner dimension, and with few channels (the CNN's first layer has 1) those
/// products are inefficient (measured: conv1 forward 2x slower than im2col; conv2, c = 32,
/// 1.08-1.18x faster). The direct kernels vectorise over channels in the weight gradient, so they
/// too want several (conv1 forward, c = 1: no faster than im2col).
fn shifted(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    g.stride == 1 && g.c >= 8 && algo != ConvAlgorithm::Im2col
}

fn direct(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    shifted(g, algo) && !matches!(algo, ConvAlgorithm::Shifted | ConvAlgorithm::Im2col) && conv_direct::available()
}

/// Winograd for the forward pass of 3x3 kernels.
fn winograd(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    direct(g, algo) && algo != ConvAlgorithm::Direct && g.k == 3 && winograd::available()
}

/// The forward pass's Winograd tile, if it runs by Winograd.
fn forward_tile(g: &Conv2dGeom, algo: ConvAlgorithm) -> Option<Tile> {
    winograd(g, algo).then(|| tile_for(g.oh(), g.ow(), algo))
}

/// The Winograd tile for an oh x ow output: 2x2 with `Winograd2x2`, else where it pays.
fn tile_for(oh: usize, ow: usize, algo: ConvAlgorithm) -> Tile {
    match algo {
        ConvAlgorithm::Winograd2x2 => Tile::F2,
        _ => Tile::for_output(oh, ow),
    }
}

/// Winograd for the gradients too: F(3x3, 2x2) for the weight gradient, the forward algorithm on
/// dY padded by 2 - pad for the input gradient (4x4 tiles where they pay). `Auto` takes it where
/// it pays ([`winograd::pays_for_gradients`]).
fn winograd_grads(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    let wanted = match algo {
        ConvAlgorithm::Winograd => true,
        ConvAlgorithm::Auto | ConvAlgorithm::Winograd2x2 => winograd::pays_for_gradients(),
        _ => false,
    };
    wanted && winograd(g, algo) && g.pad <= 2
}

/// Images per chunk of work: small enough to balance two or more threads at batch 64.
pub const IMAGES_PER_CHUNK: usize = 4;

/// Floats per piece of the parallel sum of the chunks' weight gradients.
const SUM_PIECE: usize = 1 << 14;

#[derive(Default, Debug, Clone)]
pub struct ChunkScratch {
    /// im2col: one image's patches, and their gradient.
    cols: Vec<f32>,
    dcols: Vec<f32>,
    /// Shifted products: the wide output (or its gradient), a padded image and its gradient, the
    /// image with channels last (direct kernels), and the weight gradient by tap.
    wide: Vec<f32>,
    pad_buf: Vec<f32>,
    pad_grad: Vec<f32>,
    channels_last: Vec<f32>,
    /// One image's output gradient before a fused activation.
    dy_act: Vec<f32>,
    wino: winograd::Scratch,
    dw_taps: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

#[derive(Default, Debug, Clone)]
pub struct ConvScratch {
    chunks: Vec<ChunkScratch>,
    direct: Direct,
}

impl ConvScratch {
    /// The chunks' scratch sized for n images, and the direct kernel's weights.
    fn prepare(
        &mut self,
        n: usize,
        g: &Conv2dGeom,
        algo: ConvAlgorithm,
        backward: bool,
    ) -> (&mut [ChunkScratch], &mut Direct) {
        let chunks = n.div_ceil(IMAGES_PER_CHUNK);
        if self.chunks.len() < chunks {
            self.chunks.resize_with(chunks, Default::default);
        }
        let patch = g.patch_len() * g.out_plane();
        let wide = conv_shift::wide_len(g, backward && direct(g, algo));
        for s in &mut self.chunks[..chunks] {
            if shifted(g, algo) {
                s.wide.resize(wide, 0.0);
            } else {
                s.cols.resize(patch, 0.0);
            }
            if backward {
                if winograd_grads(g, algo) {
                    s.dw_taps.resize(16 * g.f * g.c, 0.0);
                } else if shifted(g, algo) {
                    s.dw_taps.resize(g.f * g.patch_len(), 0.0);
                } else {
                    s.dcols.resize(patch, 0.0);
                    s.dw.resize(g.f * g.patch_len(), 0.0);
                }
                s.db.resize(g.f, 0.0);
            }
        }
        (&mut self.chunks[..chunks], &mut self.direct)
    }
}

multiversion! {
    /// Patches of one image: x (c, h, w) -> cols (c·k·k, oh·ow). Out-of-image taps (padding) are 0.
    pub fn im2col(x: &[f32], g: &Conv2dGeom, cols: &mut [f32]) {
        let (oh, ow) = (g.oh(), g.ow());
        let p = oh * ow;
        for c in 0..g.c {
            let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for ki in 0..g.k {
                for kj in 0..g.k {
                    let row = &mut cols[((c * g.k + ki) * g.k + kj) * p..][..p];
                    for oy in 0..oh {
                        let dst = &mut row[oy * ow..(oy + 1) * ow];
                        match g.in_row(oy, ki) {
                            None => dst.fill(0.0),
                            Some(iy) => gather_row(&plane[iy * g.w..(iy + 1) * g.w], g, kj, dst),
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// The adjoint of [`im2col`]: adds each column entry back to the pixel it was copied from, so the
    /// gradients of overlapping patches sum. dx (c, h, w) is accumulated into, not overwritten.
    pub fn col2im(cols: &[f32], g: &Conv2dGeom, dx: &mut [f32]) {
        let (oh, ow) = (g.oh(), g.ow());
        let p = oh * ow;
        for c in 0..g.c {
            let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
            for ki in 0..g.k {
                for kj in 0..g.k {
                    let row = &cols[((c * g.k + ki) * g.k + kj) * p..][..p];
                    for oy in 0..oh {
                        if let Some(iy) = g.in_row(oy, ki) {
                            scatter_row(&row[oy * ow..(oy + 1) * ow], g, kj, &mut plane[iy * g.w..(iy + 1) * g.w]);
                        }
                    }
                }
            }
        }
    }
}

/// Output columns `ox` whose tap `kj` lands inside the input row: ix = ox·stride + kj - pad.
fn valid_cols(g: &Conv2dGeom, kj: usize) -> (usize, usize) {
    let lo = g.pad.saturating_sub(kj).div_ceil(g.stride);
    let hi = if g.w + g.pad > kj { ((g.w + g.pad - kj - 1) / g.stride + 1).min(g.ow()) } else { 0 };
    (lo.min(hi), hi)
}

#[inline(always)]
fn gather_row(src: &[f32], g: &Conv2dGeom, kj: usize, dst: &mut [f32]) {
    let (lo, hi) = valid_cols(g, kj);
    dst[..lo].fill(0.0);
    dst[hi..].fill(0.0);
    if lo == hi {
        return;
    }
    let start = lo * g.stride + kj - g.pad;
    if g.stride == 1 {
        dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
    } else {
        for (d, s) in dst[lo..hi].iter_mut().zip(src[start..].iter().step_by(g.stride)) {
            *d = *s;
        }
    }
}

#[inline(always)]
fn scatter_row(src: &[f32], g: &Conv2dGeom, kj: usize, dst: &mut [f32]) {
    let (lo, hi) = valid_cols(g, kj);
    if lo == hi {
        return;
    }
    let start = lo * g.stride + kj - g.pad;
    if g.stride == 1 {
        for (d, s) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
            *d += *s;
        }
    } else {
        for (d, s) in dst[start..].iter_mut().step_by(g.stride).zip(&src[lo..hi]) {
            *d += *s;
        }
    }
}

/// y (n, f, oh, ow) = conv(x (n, c, h, w), w (f, c, k, k)) + b (f).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    g: &Conv2dGeom,
    n: usize,
    algo: ConvAlgorithm,
    slope: Option<f32>,
    scratch: &mut ConvScratch,
    y: &mut [f32],
) {
    forward_to(x, w, b, g, n, algo, slope, false, scratch, y)
}

/// Whether [`forward_max_pooled`] runs for this convolution: the Winograd path, whose 2x2 output
/// tiles are the windows of a 2x2, stride-2 max-pool.
pub fn fuses_max_pool(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    winograd(g, algo)
}

/// [`forward`] followed by a 2x2 max-pool with stride 2, y (n, f, oh / 2, ow / 2), pooled as the
/// output is computed (the same values, without writing the full output). Needs
/// [`fuses_max_pool`].
#[allow(clippy::too_many_arguments)]
pub fn forward_max_pooled(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    g: &Conv2dGeom,
    n: usize,
    algo: ConvAlgorithm,
    slope: Option<f32>,
    scratch: &mut ConvScratch,
    y: &mut [f32],
) {
    assert!(fuses_max_pool(g, algo), "conv::forward_max_pooled: not on the Winograd path");
    forward_to(x, w, b, g, n, algo, slope, true, scratch, y)
}

#[allow(clippy::too_many_arguments)]
fn forward_to(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    g: &Conv2dGeom,
    n: usize,
    algo: ConvAlgorithm,
    slope: Option<f32>,
    pool: bool,
    scratch: &mut ConvScratch,
    y: &mut [f32],
) {
    let (in_len, p, ckk) = (g.in_len(), g.out_plane(), g.patch_len());
    let out_len = if pool { g.f * (g.oh() / 2) * (g.ow() / 2) } else { g.out_len() };
    let shift = shifted(g, algo);
    let (scratch, packing) = scratch.prepare(n, g, algo, false);
    let packed = direct(g, algo).then(|| packing.prepare(w, g, false, forward_tile(g, algo)));
    for_each_chunk2(y, IMAGES_PER_CHUNK * out_len, scratch, 1, |ci, y_chunk, s| {
        let s = &mut s[0];
        let first = ci * IMAGES_PER_CHUNK;
        // Winograd applies the activation (and the pooling) in its output transform.
        if let Some((tile, u)) = packed.and_then(Direct::winograd) {
            let images = y_chunk.len() / out_len;
            let x_chunk = &x[first * in_len..(first + images) * in_len];
            let dims = (g.c, g.h, g.w);
            winograd::correlate(tile, x_chunk, images, dims, g.pad, u, g.f, Some(b), slope, pool, &mut s.wino, y_chunk);
            return;
        }
        for (j, y_n) in y_chunk.chunks_mut(out_len).enumerate() {
            let img = first + j;
            let x_n = &x[img * in_len..(img + 1) * in_len];
            if shift {
                conv_shift::forward_image(x_n, w, b, g, packed, &mut s.pad_buf, &mut s.wide, y_n);
            } else {
                im2col(x_n, g, &mut s.cols);
                for (row, &bias) in y_n.chunks_mut(p).zip(b) {
                    row.fill(bias);
                }
                gemm(Mat::new(w, g.f, ckk), Mat::new(&s.cols, ckk, p), y_n, p, true);
            }
            // The activation while the image's output is still in cache.
            if let Some(slope) = slope {
                leaky_relu_here(y_n, slope);
            }
        }
    });
}

/// Writes the weight and bias gradients to `dw`, `db` and the input gradient to `dx` if given.
/// With `act` = (slope, y), the output went through leaky ReLU (y, after it) and dy is the
/// gradient of y: each image's dy is first turned into the gradient before the activation.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    w: &[f32],
    act: Option<(f32, &[f32])>,
    dy: &[f32],
    g: &Conv2dGeom,
    n: usize,
    algo: ConvAlgorithm,
    scratch: &mut ConvScratch,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let (in_len, out_len, p, ckk) = (g.in_len(), g.out_len(), g.out_plane(), g.patch_len());
    let shift = shifted(g, algo);
    let wino = winograd_grads(g, algo);
    let (scratch, packing) = scratch.prepare(n, g, algo, true);
    // The input gradient's output is the input's size.
    let packed = direct(g, algo).then(|| packing.prepare(w, g, true, wino.then(|| tile_for(g.h, g.w, algo))));
    let chunk_work = |ci: usize, s: &mut ChunkScratch, mut dx_chunk: Option<&mut [f32]>| {
        if shift {
            s.dw_taps.fill(0.0);
        } else {
            s.dw.fill(0.0);
        }
        s.db.fill(0.0);
        let first = ci * IMAGES_PER_CHUNK;
        for img in first..(first + IMAGES_PER_CHUNK).min(n) {
            let mut dy_n = &dy[img * out_len..(img + 1) * out_len];
            if let Some((slope, y)) = act {
                s.dy_act.resize(out_len, 0.0);
                leaky_relu_grad_here(&y[img * out_len..(img + 1) * out_len], dy_n, slope, &mut s.dy_act);
                dy_n = &s.dy_act;
            }
            if shift {
                let dx_n = dx_chunk.as_deref_mut().map(|d| &mut d[(img - first) * in_len..(img - first + 1) * in_len]);
                let x_n = &x[img * in_len..(img + 1) * in_len];
                if let Some((tile, u)) = packed.and_then(Direct::winograd) {
                    for (acc, plane) in s.db.iter_mut().zip(dy_n.chunks(p)) {
                        *acc += super::elementwise::sum(plane);
                    }
                    let (x_dims, dy_dims) = ((g.c, g.h, g.w), (g.f, g.oh(), g.ow()));
                    winograd::accumulate_weight_grad(x_n, x_dims, g.pad, dy_n, g.f, &mut s.wino, &mut s.dw_taps);
                    if let Some(dx_n) = dx_n {
                        winograd::correlate(
                            tile,
                            dy_n,
                            1,
                            dy_dims,
                            2 - g.pad,
                            u,
                            g.c,
                            None,
                            None,
                            false,
                            &mut s.wino,
                            dx_n,
                        );
                    }
                    continue;
                }
                let ChunkScratch { pad_buf, pad_grad, channels_last, wide, dw_taps, db, .. } = s;
                conv_shift::backward_image(
                    x_n,
                    w,
                    dy_n,
                    g,
                    packed,
                    pad_buf,
                    pad_grad,
                    channels_last,
                    wide,
                    dw_taps,
                    db,
                    dx_n,
                );
                continue;
            }
            im2col(&x[img * in_len..(img + 1) * in_len], g, &mut s.cols);
            gemm(Mat::new(dy_n, g.f, p), Mat::new(&s.cols, ckk, p).t(), &mut s.dw, ckk, true);
            for (acc, row) in s.db.iter_mut().zip(dy_n.chunks(p)) {
                *acc += super::elementwise::sum(row);
            }
            if let Some(dx_chunk) = dx_chunk.as_deref_mut() {
                gemm(Mat::new(w, g.f, ckk).t(), Mat::new(dy_n, g.f, p), &mut s.dcols, p, false);
                let dx_n = &mut dx_chunk[(img - first) * in_len..(img - first + 1) * in_len];
                dx_n.fill(0.0);
                col2im(&s.dcols, g, dx_n);
            }
        }
    };
    match dx {
        Some(dx) => {
            for_each_chunk2(dx, IMAGES_PER_CHUNK * in_len, scratch, 1, |ci, d, s| chunk_work(ci, &mut s[0], Some(d)))
        }
        None => for_each_chunk(scratch, 1, |ci, s| chunk_work(ci, &mut s[0], None)),
    }
    // Partial gradients summed in chunk order; shifted products sum them by tap (or Winograd
    // component), contiguous, and reorder (or transform) once.
    dw.fill(0.0);
    db.fill(0.0);
    if let [first, rest @ ..] = scratch
        && shift
    {
        // By element ranges in parallel, each adding the chunks in their order.
        let rest: &[ChunkScratch] = rest;
        for_each_chunk(&mut first.dw_taps, SUM_PIECE, |i, piece| {
            for s in rest {
                super::elementwise::add_here(piece, &s.dw_taps[i * SUM_PIECE..]);
            }
        });
        if wino {
            winograd::add_weight_grad(&first.dw_taps, g.c, g.f, dw);
        } else {
            conv_shift::add_taps(&first.dw_taps, g, dw);
        }
    }
    for s in scratch.iter() {
        if !shift {
            super::elementwise::add_here(dw, &s.dw);
        }
        super::elementwise::add_here(db, &s.db);
    }
}

/// Direct-loop convolution: the reference the im2col path is tested against.
pub fn forward_direct(x: &[f32], w: &[f32], b: &[f32], g: &Conv2dGeom, n: usize) -> Vec<f32> {
    let (oh, ow) = (g.oh(), g.ow());
    let mut y = vec![0.0; n * g.out_len()];
    for img in 0..n {
        for f in 0..g.f {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[f];
                    for c in 0..g.c {
                        for ki in 0..g.k {
                            for kj in 0..g.k {
                                let iy = (oy * g.stride + ki) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kj) as isize - g.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                    acc += x[img * g.in_len() + (c * g.h + iy as usize) * g.w + ix as usize]
                                        * w[((f * g.c + c) * g.k + ki) * g.k + kj];
                                }
                            }
                        }
                    }
                    y[img * g.out_len() + (f * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::elementwise::{leaky_relu, leaky_relu_backward};
    use crate::rng::Rng;

    /// Convolution with the activation fused gives bit for bit what the two passes give.
    #[test]
    fn fused_leaky_relu_matches_separate_passes() {
        let mut rng = Rng::new(3);
        for (g, algo) in [
            (Conv2dGeom { c: 32, h: 10, w: 9, f: 16, k: 3, stride: 1, pad: 0 }, ConvAlgorithm::Auto),
            (Conv2dGeom { c: 32, h: 10, w: 9, f: 16, k: 3, stride: 1, pad: 0 }, ConvAlgorithm::Winograd),
            (Conv2dGeom { c: 32, h: 10, w: 9, f: 16, k: 3, stride: 1, pad: 0 }, ConvAlgorithm::Im2col),
            (Conv2dGeom { c: 1, h: 8, w: 8, f: 8, k: 3, stride: 2, pad: 1 }, ConvAlgorithm::Auto),
        ] {
            let n = 6;
            let x = randn(n * g.in_len(), &mut rng);
            let w = randn(g.f * g.patch_len(), &mut rng);
            let b = randn(g.f, &mut rng);
            let dy = randn(n * g.out_len(), &mut rng);
            let mut s = ConvScratch::default();
            let (mut pre, mut post, mut fused) = (vec![0.0; dy.len()], vec![0.0; dy.len()], vec![0.0; dy.len()]);
            forward(&x, &w, &b, &g, n, algo, None, &mut s, &mut pre);
            leaky_relu(&pre, 0.01, &mut post);
            forward(&x, &w, &b, &g, n, algo, Some(0.01), &mut s, &mut fused);
            assert_eq!(post, fused);
            let mut dpre = vec![0.0; dy.len()];
            leaky_relu_backward(&post, &dy, 0.01, &mut dpre);
            let grads = |act: Option<(f32, &[f32])>, dy: &[f32], s: &mut ConvScratch| {
                let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; g.f], vec![0.0; x.len()]);
                backward(&x, &w, act, dy, &g, n, algo, s, &mut dw, &mut db, Some(&mut dx));
                [dw, db, dx]
            };
            assert_eq!(grads(None, &dpre, &mut s), grads(Some((0.01, &fused)), &dy, &mut s));
        }
    }

    fn randn(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| rng.normal()).collect()
    }

    /// The shifted-product paths (direct kernel where the CPU has it, and through `gemm`) against
    /// the im2col reference: outputs and all three gradients.
    #[test]
    fn shifted_products_match_im2col() {
        let geoms = [
            Conv2dGeom { c: 32, h: 26, w: 26, f: 64, k: 3, stride: 1, pad: 0 },
            Conv2dGeom { c: 8, h: 9, w: 7, f: 4, k: 3, stride: 1, pad: 0 },
            Conv2dGeom { c: 8, h: 6, w: 6, f: 5, k: 3, stride: 1, pad: 1 },
            Conv2dGeom { c: 9, h: 5, w: 8, f: 2, k: 3, stride: 1, pad: 2 },
            Conv2dGeom { c: 8, h: 7, w: 5, f: 3, k: 2, stride: 1, pad: 0 },
            Conv2dGeom { c: 10, h: 9, w: 9, f: 3, k: 5, stride: 1, pad: 1 },
            Conv2dGeom { c: 1, h: 28, w: 28, f: 8, k: 3, stride: 1, pad: 0 },
            Conv2dGeom { c: 16, h: 12, w: 12, f: 8, k: 3, stride: 1, pad: 0 },
            Conv2dGeom { c: 64, h: 12, w: 12, f: 128, k: 3, stride: 1, pad: 0 },
            Conv2dGeom { c: 48, h: 7, w: 6, f: 20, k: 3, stride: 1, pad: 1 },
        ];
        let mut rng = Rng::new(11);
        for g in geoms {
            let n = 5;
            let x = randn(n * g.in_len(), &mut rng);
            let w = randn(g.f * g.patch_len(), &mut rng);
            let b = randn(g.f, &mut rng);
            let dy = randn(n * g.out_len(), &mut rng);
            let run = |algo| {
                let mut s = ConvScratch::default();
                let mut y = vec![0.0; n * g.out_len()];
                forward(&x, &w, &b, &g, n, algo, None, &mut s, &mut y);
                let (mut dw, mut db, mut dx) = (vec![7.0; w.len()], vec![7.0; g.f], vec![7.0; x.len()]);
                backward(&x, &w, None, &dy, &g, n, algo, &mut s, &mut dw, &mut db, Some(&mut dx));
                [y, dw, db, dx]
            };
            let reference = run(ConvAlgorithm::Im2col);
            for algo in ConvAlgorithm::ALL.into_iter().filter(|&a| a != ConvAlgorithm::Im2col) {
                let fast = run(algo);
                // Winograd F(4x4, 3x3) rounds relative to the sum's terms (its transforms scale
                // them by up to 8 and 1/24), as the sums in another order below do.
                let direct = forward_direct(&x, &w, &b, &g, n);
                let scale = direct.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (u, v) in fast[0].iter().zip(&direct) {
                    assert!(
                        (u - v).abs() <= 1e-4 * (1.0 + v.abs()) + 1e-5 * scale,
                        "{algo:?} y vs direct loops: {u} vs {v} for {g:?}"
                    );
                }
                for (what, (a, r)) in ["y", "dw", "db", "dx"].iter().zip(fast.iter().zip(&reference)) {
                    assert_eq!(a.len(), r.len());
                    // Sums of thousands of terms (dw) in another order differ by rounding relative
                    // to the sums' scale, not to each (possibly cancelling) value.
                    let scale = r.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    for (u, v) in a.iter().zip(r) {
                        assert!(
                            (u - v).abs() <= 1e-4 * (1.0 + v.abs()) + 1e-5 * scale,
                            "{algo:?} {what}: {u} vs {v} for {g:?}"
                        );
                    }
                }
            }
        }
    }
}
