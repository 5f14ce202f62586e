//! Element-wise kernels, bias and row sums: the GPU side of src/ops/cpu/elementwise.rs, with the
//! same formulas (bit-identical results where the arithmetic is exactly rounded).
//!
//! Lengths are explicit: a tensor may use the start of a larger buffer.

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::gpu::{Bind, GROUP, Gpu, GpuBuffer, f, fits, u};

const SRC: &str = include_str!("elementwise.wgsl");

/// The shader's `Params`.
#[derive(Default)]
struct P {
    n: usize,
    cols: usize,
    s: f32,
    k0: u32,
    k1: u32,
    threshold: u32,
    x_off: usize,
    y_off: usize,
}

/// Records entry point `entry` over `p.n` threads.
fn run(gpu: &Gpu, entry: &str, p: P, binds: &[(u32, Bind)]) -> Result<()> {
    let k = gpu.kernel("elementwise", entry, || SRC.to_string())?;
    let words = [u(p.n), u(p.cols), f(p.s), p.k0, p.k1, p.threshold, u(p.x_off), u(p.y_off)];
    gpu.dispatch(&k, &words, binds, gpu.grid(p.n.div_ceil(GROUP as usize) as u64)?)
}

/// y[..n] = value.
pub fn fill(y: &GpuBuffer, n: usize, value: f32) -> Result<()> {
    fits("fill", "y", y, n)?;
    run(y.gpu(), "fill", P { n, s: value, ..P::default() }, &[(3, Bind::W(y))])
}

/// `y[y_off..][..n] = x[x_off..][..n]`.
pub fn copy(x: &GpuBuffer, x_off: usize, y: &GpuBuffer, y_off: usize, n: usize) -> Result<()> {
    fits("copy", "x", x, x_off + n)?;
    fits("copy", "y", y, y_off + n)?;
    run(x.gpu(), "copy", P { n, x_off, y_off, ..P::default() }, &[(1, Bind::R(x)), (3, Bind::W(y))])
}

/// y (rows, b_len) += b on every row.
pub fn add_row_bias(y: &GpuBuffer, rows: usize, b: &GpuBuffer, b_len: usize) -> Result<()> {
    fits("add_row_bias", "y", y, rows * b_len)?;
    fits("add_row_bias", "b", b, b_len)?;
    let p = P { n: rows * b_len, cols: b_len, ..P::default() };
    run(y.gpu(), "add_row_bias", p, &[(1, Bind::R(b)), (3, Bind::W(y))])
}

/// db (cols) = Σ_rows dy (rows, cols), rows in order.
pub fn sum_rows(dy: &GpuBuffer, rows: usize, cols: usize, db: &GpuBuffer) -> Result<()> {
    row_sums(dy, rows, cols, 1.0, false, db)
}

/// db (cols) += s·Σ_rows dy (rows, cols), each row's term added in order, as the CPU does.
pub fn add_sum_rows(dy: &GpuBuffer, rows: usize, cols: usize, s: f32, db: &GpuBuffer) -> Result<()> {
    row_sums(dy, rows, cols, s, true, db)
}

fn row_sums(dy: &GpuBuffer, rows: usize, cols: usize, s: f32, keep: bool, db: &GpuBuffer) -> Result<()> {
    fits("sum_rows", "dy", dy, rows * cols)?;
    fits("sum_rows", "db", db, cols)?;
    let p = P { n: cols, cols, s, k0: keep as u32, k1: u(rows), ..P::default() };
    run(dy.gpu(), "sum_rows", p, &[(1, Bind::R(dy)), (3, Bind::W(db))])
}

/// y = x for x >= 0, slope·x otherwise, over n values.
pub fn leaky_relu(x: &GpuBuffer, n: usize, slope: f32, y: &GpuBuffer) -> Result<()> {
    fits("leaky_relu", "x", x, n)?;
    fits("leaky_relu", "y", y, n)?;
    run(x.gpu(), "leaky_relu", P { n, s: slope, ..P::default() }, &[(1, Bind::R(x)), (3, Bind::W(y))])
}

/// dx = dy where the activation's output y > 0, slope·dy elsewhere.
pub fn leaky_relu_backward(y: &GpuBuffer, dy: &GpuBuffer, n: usize, slope: f32, dx: &GpuBuffer) -> Result<()> {
    for (what, b) in [("y", y), ("dy", dy), ("dx", dx)] {
        fits("leaky_relu_backward", what, b, n)?;
    }
    let p = P { n, s: slope, ..P::default() };
    run(y.gpu(), "leaky_relu_backward", p, &[(1, Bind::R(y)), (2, Bind::R(dy)), (3, Bind::W(dx))])
}

/// out = a·b element-wise.
pub fn mul(a: &GpuBuffer, b: &GpuBuffer, n: usize, out: &GpuBuffer) -> Result<()> {
    for (what, t) in [("a", a), ("b", b), ("out", out)] {
        fits("mul", what, t, n)?;
    }
    run(a.gpu(), "mul", P { n, ..P::default() }, &[(1, Bind::R(a)), (2, Bind::R(b)), (3, Bind::W(out))])
}

/// a = (a + b) / 2.
pub fn average_into(a: &GpuBuffer, b: &GpuBuffer, n: usize) -> Result<()> {
    fits("average_into", "a", a, n)?;
    fits("average_into", "b", b, n)?;
    run(a.gpu(), "average_into", P { n, ..P::default() }, &[(1, Bind::R(b)), (3, Bind::W(a))])
}

/// y += s·x (gradient accumulation).
pub fn axpy(s: f32, x: &GpuBuffer, n: usize, y: &GpuBuffer) -> Result<()> {
    fits("axpy", "x", x, n)?;
    fits("axpy", "y", y, n)?;
    run(x.gpu(), "axpy", P { n, s, ..P::default() }, &[(1, Bind::R(x)), (3, Bind::W(y))])
}

/// Inverted dropout, the CPU's mask bit for bit: one draw from `rng` keys the call, element i's
/// uniform is a hash of (key, i); mask = (u > p) / (1 - p), y = x·mask.
pub fn dropout(x: &GpuBuffer, n: usize, p: f32, rng: &mut Rng, mask: &GpuBuffer, y: &GpuBuffer) -> Result<()> {
    for (what, b) in [("x", x), ("mask", mask), ("y", y)] {
        fits("dropout", what, b, n)?;
    }
    // Computed here as the CPU does: WGSL's division is not exactly rounded.
    let keep = 1.0 / (1.0 - p);
    let threshold = (p as f64 * (1u64 << 24) as f64) as u32;
    let key = rng.next_u64();
    let params = P { n, s: keep, k0: key as u32, k1: (key >> 32) as u32, threshold, ..P::default() };
    run(x.gpu(), "dropout", params, &[(1, Bind::R(x)), (3, Bind::W(mask)), (4, Bind::W(y))])
}

/// Mirrors the rows of length `w` of x[..n] in place (images left-right, (…, w)).
pub fn flip_width(x: &GpuBuffer, n: usize, w: usize) -> Result<()> {
    fits("flip_width", "x", x, n)?;
    if w == 0 || !n.is_multiple_of(w) {
        return Err(Error::arg("flip_width", format!("{n} values are not rows of {w}")));
    }
    if w < 2 {
        return Ok(());
    }
    let p = P { n: n / w * (w / 2), cols: w, ..P::default() };
    run(x.gpu(), "flip_width", p, &[(3, Bind::W(x))])
}
