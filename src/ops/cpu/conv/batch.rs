//! The batch-parallel passes: images in fixed chunks, each chunk with its own scratch (cols, dcols
//! and partial dw/db), so threads never share a buffer, and partial gradients summed in chunk
//! order. Each image runs by the algorithm [`super::plan`] picks.

use super::im2col::{col2im, im2col};
use super::plan::{direct, forward_tile, fuses_max_pool, shifted, tile_for, winograd_grads};
use super::shifted::{self as conv_shift, Direct};
use super::winograd;
use crate::ops::cpu::elementwise::{self, leaky_relu_grad_here, leaky_relu_here};
use crate::ops::cpu::gemm::{Mat, gemm};
use crate::ops::cpu::par::{for_each_chunk, for_each_chunk2};
use crate::ops::params::{Conv2dGeom, ConvAlgorithm};

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
    /// The weight gradient's own: sharing one with the input gradient, which runs on each image
    /// after it, would re-zero the padded copy and regrow V and M every time.
    wino_wgrad: winograd::Scratch,
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
                        *acc += elementwise::sum(plane);
                    }
                    let (x_dims, dy_dims) = ((g.c, g.h, g.w), (g.f, g.oh(), g.ow()));
                    winograd::accumulate_weight_grad(x_n, x_dims, g.pad, dy_n, g.f, &mut s.wino_wgrad, &mut s.dw_taps);
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
                *acc += elementwise::sum(row);
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
                elementwise::add_here(piece, &s.dw_taps[i * SUM_PIECE..]);
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
            elementwise::add_here(dw, &s.dw);
        }
        elementwise::add_here(db, &s.db);
    }
}
