//! Stride-1 convolution without im2col: a k x k convolution is the sum of k² matrix products, one
//! per kernel tap (ki, kj), each reading the image shifted by that tap.
//!
//! Lay the output out "wide", with the input's row length wp instead of ow, so output pixel p =
//! oy·wp + ox reads input pixel p + ki·wp + kj through tap (ki, kj). For a fixed tap, the input a
//! whole output plane needs is then one contiguous run per channel: a strided matrix view
//! (c, oh·wp) of the image itself, with nothing copied. So, per image,
//!   forward  Y_wide (f, oh·wp)  = Σ_taps W_tap (f, c) · X_tap (c, oh·wp)
//!   backward dW_tap (f, c)     += dY_wide · X_tapᵀ
//!            dX_tap (c, oh·wp) += W_tapᵀ · dY_wide      (views of dx that overlap, added in turn)
//! The wp - ow extra columns per row are computed and dropped (8% more work for conv2 of the CNN,
//! 20% for conv3); in dY_wide they are zero, so they add nothing to dW or dX. This removes the
//! im2col and col2im passes, which cost about as much as the products themselves.

use super::direct as conv_direct;
use super::winograd::{self, Tile};
use crate::ops::cpu::gemm::{Mat, gemm};
use crate::ops::params::Conv2dGeom;

/// Weights packed once per layer call for [`conv_direct`], with the taps' offsets, or transformed
/// for [`winograd`] (3x3 kernels); used when the CPU runs those kernels (else every tap is a
/// `gemm` call).
#[derive(Default, Debug, Clone)]
pub struct Direct {
    packed: Vec<f32>,
    offs: Vec<usize>,
    winograd: Vec<f32>,
    /// The weights and the pass the packing was made from: inference calls reuse it.
    source: Vec<f32>,
    made_for: Option<(Conv2dGeom, bool, Option<Tile>)>,
}

impl Direct {
    /// For the forward pass (`backward` false) or the input gradient, by Winograd on `wino`'s
    /// tiles if given (3x3 kernels).
    pub fn prepare(&mut self, w: &[f32], g: &Conv2dGeom, backward: bool, wino: Option<Tile>) -> &Self {
        if self.made_for == Some((*g, backward, wino)) && self.source == w {
            return self;
        }
        self.source.clear();
        self.source.extend_from_slice(w);
        self.made_for = Some((*g, backward, wino));
        self.winograd.clear();
        let kk = g.k * g.k;
        match (wino, backward) {
            (Some(tile), false) => winograd::pack_weights(tile, g.f, g.c, &mut self.winograd, |f, c| {
                std::array::from_fn(|ki| std::array::from_fn(|kj| w[(f * g.c + c) * kk + ki * 3 + kj]))
            }),
            // The input gradient: channels map filters back to channels, kernels flipped.
            (Some(tile), true) => winograd::pack_weights(tile, g.c, g.f, &mut self.winograd, |c, f| {
                std::array::from_fn(|ki| std::array::from_fn(|kj| w[(f * g.c + c) * kk + (2 - ki) * 3 + 2 - kj]))
            }),
            (None, true) => conv_direct::pack_backward(w, g, &mut self.packed),
            (None, false) => conv_direct::pack_forward(w, g, &mut self.packed),
        }
        conv_direct::tap_offsets(g, wide_dims(g).1, &mut self.offs);
        self
    }

    /// The Winograd weights and their tile, if prepared for Winograd.
    pub fn winograd(&self) -> Option<(Tile, &[f32])> {
        let tile = self.made_for?.2?;
        Some((tile, &self.winograd[..]))
    }
}

/// Zeros in front of each row of dY for the direct input gradient: the largest tap offset.
fn front(g: &Conv2dGeom) -> usize {
    (g.k - 1) * wide_dims(g).1 + g.k - 1
}

/// Floats of the `wide` scratch buffer: the wide output, or dY in the direct kernel's layout.
pub fn wide_len(g: &Conv2dGeom, direct: bool) -> usize {
    let (hp, wp, _) = wide_dims(g);
    if direct { g.f * (hp * wp + front(g)) } else { g.f * g.oh() * wp }
}

/// Sizes of the padded input (hp, wp) and of the wide output: oh·wp - (k - 1) columns are
/// computed; the last k - 1 would read past the image and are never used.
pub fn wide_dims(g: &Conv2dGeom) -> (usize, usize, usize) {
    let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    (hp, wp, g.oh() * wp - (g.k - 1))
}

/// The image with `pad` zeros around every channel, or the image itself when there is no padding.
fn padded<'a>(x: &'a [f32], g: &Conv2dGeom, buf: &'a mut Vec<f32>) -> &'a [f32] {
    if g.pad == 0 {
        return x;
    }
    let (hp, wp, _) = wide_dims(g);
    buf.clear();
    buf.resize(g.c * hp * wp, 0.0);
    for (plane, dst) in x.chunks(g.h * g.w).zip(buf.chunks_mut(hp * wp)) {
        for (row, d) in plane.chunks(g.w).zip(dst[g.pad * wp..].chunks_mut(wp)) {
            d[g.pad..g.pad + g.w].copy_from_slice(row);
        }
    }
    buf
}

/// Tap t = ki·k + kj of w (f, c, k, k) as an (f, c) matrix view.
fn tap<'a>(w: &'a [f32], g: &Conv2dGeom, t: usize) -> Mat<'a> {
    let kk = g.k * g.k;
    Mat { data: &w[t..], rows: g.f, cols: g.c, rs: g.c * kk, cs: kk }
}

/// Input seen through tap (ki, kj): (c, oh·wp - k + 1), rows are channels.
fn shifted<'a>(x: &'a [f32], g: &Conv2dGeom, ki: usize, kj: usize) -> Mat<'a> {
    let (hp, wp, cols) = wide_dims(g);
    Mat { data: &x[ki * wp + kj..], rows: g.c, cols, rs: hp * wp, cs: 1 }
}

/// y (f, oh, ow) of one image x (c, h, w). `wide` holds f·oh·wp floats; `pad_buf` is scratch.
#[allow(clippy::too_many_arguments)]
pub fn forward_image(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    g: &Conv2dGeom,
    direct: Option<&Direct>,
    pad_buf: &mut Vec<f32>,
    wide: &mut [f32],
    y: &mut [f32],
) {
    let (hp, wp, cols) = wide_dims(g);
    let (oh, ow) = (g.oh(), g.ow());
    let src = padded(x, g, pad_buf);
    if let Some(d) = direct {
        conv_direct::taps_product(&d.packed, g.f, g.c, &d.offs, src, hp * wp, cols, wide, oh * wp);
    } else {
        for ki in 0..g.k {
            for kj in 0..g.k {
                let t = ki * g.k + kj;
                gemm(tap(w, g, t), shifted(src, g, ki, kj), wide, oh * wp, t > 0);
            }
        }
    }
    for ((plane, wide_plane), &bias) in y.chunks_mut(oh * ow).zip(wide.chunks(oh * wp)).zip(b) {
        for (row, wide_row) in plane.chunks_mut(ow).zip(wide_plane.chunks(wp)) {
            for (o, &v) in row.iter_mut().zip(wide_row) {
                *o = v + bias;
            }
        }
    }
}

/// Backward of one image: adds dL/dw into `dw_taps` (k·k, f, c) and dL/db into `db`; writes dL/dx
/// (c, h, w) into `dx` when given; by the direct kernels when `direct` holds the backward packing.
/// `wide` holds [`wide_len`] floats; `pad_buf`, `pad_grad`, `channels_last` are scratch.
#[allow(clippy::too_many_arguments)]
pub fn backward_image(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &Conv2dGeom,
    direct: Option<&Direct>,
    pad_buf: &mut Vec<f32>,
    pad_grad: &mut Vec<f32>,
    channels_last: &mut Vec<f32>,
    wide: &mut [f32],
    dw_taps: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let (hp, wp, cols) = wide_dims(g);
    let (oh, ow) = (g.oh(), g.ow());
    // dY wide, each row preceded by `lead` zeros and followed by zeros up to the row stride.
    let (lead, rs) = if direct.is_some() { (front(g), hp * wp + front(g)) } else { (0, oh * wp) };
    for ((plane, wide_plane), acc) in dy.chunks(oh * ow).zip(wide.chunks_mut(rs)).zip(db.iter_mut()) {
        let (front, rows) = wide_plane.split_at_mut(lead);
        front.fill(0.0);
        for (row, wide_row) in plane.chunks(ow).zip(rows.chunks_mut(wp)) {
            wide_row[..ow].copy_from_slice(row);
            wide_row[ow..].fill(0.0);
        }
        rows[oh * wp..].fill(0.0);
        *acc += crate::ops::cpu::elementwise::sum(plane);
    }
    let dy_wide = Mat::strided(&wide[lead..], g.f, cols, rs);
    let src = padded(x, g, pad_buf);
    if let Some(d) = direct {
        // Rows of 64-byte-aligned vectors when c is a multiple of 16.
        channels_last.resize(hp * wp * g.c + 16, 0.0);
        let a = channels_last.as_ptr().align_offset(64).min(16);
        let xt = &mut channels_last[a..a + hp * wp * g.c];
        conv_direct::transpose_image(src, g.c, hp * wp, xt, g.c);
        conv_direct::taps_weight_grad(&wide[lead..], g.f, rs, xt, g.c, g.c, &d.offs, (oh, ow, wp), dw_taps);
    } else {
        let fc = g.f * g.c;
        for ki in 0..g.k {
            for kj in 0..g.k {
                let t = ki * g.k + kj;
                gemm(dy_wide, shifted(src, g, ki, kj).t(), &mut dw_taps[t * fc..(t + 1) * fc], g.c, true);
            }
        }
    }
    let Some(dx) = dx else { return };
    let grad: &mut [f32] = if g.pad == 0 {
        dx
    } else {
        pad_grad.resize(g.c * hp * wp, 0.0);
        pad_grad
    };
    if let Some(d) = direct {
        conv_direct::taps_product(&d.packed, g.c, g.f, &d.offs, wide, rs, hp * wp, grad, hp * wp);
    } else {
        grad.fill(0.0);
        for ki in 0..g.k {
            for kj in 0..g.k {
                let t = ki * g.k + kj;
                gemm(tap(w, g, t).t(), dy_wide, &mut grad[ki * wp + kj..], hp * wp, true);
            }
        }
    }
    if g.pad > 0 {
        for (plane, src) in dx.chunks_mut(g.h * g.w).zip(pad_grad.chunks(hp * wp)) {
            for (row, s) in plane.chunks_mut(g.w).zip(src[g.pad * wp..].chunks(wp)) {
                row.copy_from_slice(&s[g.pad..g.pad + g.w]);
            }
        }
    }
}

/// dw (f, c, k, k) += dw_taps (k·k, f, c), parallel over filters.
pub fn add_taps(dw_taps: &[f32], g: &Conv2dGeom, dw: &mut [f32]) {
    let (fc, kk) = (g.f * g.c, g.k * g.k);
    crate::ops::cpu::par::for_each_chunk(&mut dw[..fc * kk], g.c * kk, |f, dw_f| {
        for (t, taps) in dw_taps.chunks(fc).enumerate() {
            for (j, &v) in taps[f * g.c..(f + 1) * g.c].iter().enumerate() {
                dw_f[j * kk + t] += v;
            }
        }
    });
}
