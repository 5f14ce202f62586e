//! Softmax, the fused softmax + cross-entropy loss, and row argmax (src/ops/cpu/softmax.rs and
//! `ops::argmax_rows`). The loss and the correct count stay on the device, in slots of buffers
//! the caller reads back when it needs them.

use crate::error::{Error, Result};
use crate::tensor::gpu::{Bind, GROUP, Gpu, GpuBuffer, f, fits, u};

const SRC: &str = include_str!("softmax.wgsl");

/// Params: rows, k, the smoothed targets (on, off), and the slot `at` of the loss.
fn run(gpu: &Gpu, entry: &str, params: [u32; 5], binds: &[(u32, Bind)], groups: [u32; 3]) -> Result<()> {
    if params[1] == 0 {
        return Err(Error::arg("gpu softmax", "rows of 0 classes"));
    }
    let kernel = gpu.kernel("softmax", entry, || SRC.to_string())?;
    gpu.dispatch(&kernel, &params, binds, groups)
}

/// probs (rows, k) = softmax(logits (rows, k)), row by row.
pub fn softmax(logits: &GpuBuffer, rows: usize, k: usize, probs: &GpuBuffer) -> Result<()> {
    fits("softmax", "logits", logits, rows * k)?;
    fits("softmax", "probs", probs, rows * k)?;
    let gpu = logits.gpu();
    let groups = gpu.grid(rows.div_ceil(GROUP as usize) as u64)?;
    run(gpu, "softmax", [u(rows), u(k), 0, 0, 0], &[(1, Bind::R(logits)), (3, Bind::W(probs))], groups)
}

/// `best[row]` = the index of the first maximum of row `row` of x (rows, k): the predicted class.
pub fn argmax_rows(x: &GpuBuffer, rows: usize, k: usize, best: &GpuBuffer) -> Result<()> {
    fits("argmax_rows", "x", x, rows * k)?;
    fits("argmax_rows", "best", best, rows)?;
    let gpu = x.gpu();
    let groups = gpu.grid(rows.div_ceil(GROUP as usize) as u64)?;
    run(gpu, "argmax_rows", [u(rows), u(k), 0, 0, 0], &[(1, Bind::R(x)), (7, Bind::W(best))], groups)
}

/// Softmax cross-entropy of logits (rows, k) against `labels` (rows u32 values, each < k: checked
/// by the caller, which holds them on the host) smoothed by ε: target (1 - ε)·onehot + ε/k.
/// Writes ŷ to `probs`, (ŷ - target)/rows to `dlogits`, the mean loss to `loss[at]` and the
/// number of rows whose first maximum of ŷ is their label (u32) to `correct[at]`.
#[allow(clippy::too_many_arguments)]
pub fn softmax_cross_entropy(
    logits: &GpuBuffer,
    labels: &GpuBuffer,
    rows: usize,
    k: usize,
    smoothing: f32,
    probs: &GpuBuffer,
    dlogits: &GpuBuffer,
    loss: &GpuBuffer,
    correct: &GpuBuffer,
    at: usize,
) -> Result<()> {
    for (what, b, n) in [("logits", logits, rows * k), ("labels", labels, rows), ("probs", probs, rows * k)] {
        fits("softmax_cross_entropy", what, b, n)?;
    }
    for (what, b, n) in [("dlogits", dlogits, rows * k), ("loss", loss, at + 1), ("correct", correct, at + 1)] {
        fits("softmax_cross_entropy", what, b, n)?;
    }
    if rows == 0 {
        return Err(Error::arg("softmax_cross_entropy", "an empty batch"));
    }
    // The CPU's targets, computed the same way.
    let (off, on) = (smoothing / k as f32, 1.0 - smoothing + smoothing / k as f32);
    let binds = [
        (1, Bind::R(logits)),
        (2, Bind::R(labels)),
        (3, Bind::W(probs)),
        (4, Bind::W(dlogits)),
        (5, Bind::W(loss)),
        (6, Bind::W(correct)),
    ];
    run(logits.gpu(), "cross_entropy", [u(rows), u(k), f(on), f(off), u(at)], &binds, [1, 1, 1])
}
