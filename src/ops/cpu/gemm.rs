//! Matrix products through the `gemm` crate (chosen over `matrixmultiply` by measuring the CNN's
//! real shapes on this machine: 1.1-5x faster single-threaded, see docs/ARCHITECTURE.md).
//!
//! Every matrix is given by a slice plus a row stride and a column stride, so transposed operands
//! cost nothing. We always call it single-threaded: the callers parallelise over independent row
//! blocks or images, which scales better on these shapes and keeps results thread-count independent.

use std::cell::Cell;

thread_local! {
    static IN_GEMM: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside the `gemm` crate. It allocates packing buffers inside its calls;
/// the allocation test uses this to tell those from ours (we make none per training step).
pub fn in_gemm() -> bool {
    IN_GEMM.with(Cell::get)
}

/// A read-only strided matrix view.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major (rows, cols).
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: cols, cs: 1 }
    }
    /// The transpose, as a view.
    pub fn t(self) -> Self {
        Mat { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }
    /// Row-major (rows, cols) with a row stride larger than `cols` (a column block of a wider matrix).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Mat { data, rows, cols, rs, cs: 1 }
    }
    fn max_index(&self) -> usize {
        if self.rows == 0 || self.cols == 0 { 0 } else { (self.rows - 1) * self.rs + (self.cols - 1) * self.cs }
    }
}

/// c(m, n) = a(m, k)·b(k, n), or c += a·b when `accumulate`. `c` is row-major with row stride `c_rs`.
pub fn gemm(a: Mat, b: Mat, c: &mut [f32], c_rs: usize, accumulate: bool) {
    gemm_scaled(a, b, c, c_rs, accumulate, 1.0)
}

/// c = s·a·b, or c += s·a·b when `accumulate`.
pub fn gemm_scaled(a: Mat, b: Mat, c: &mut [f32], c_rs: usize, accumulate: bool, s: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions");
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * c_rs + n <= c.len(), "gemm: output too small");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * c_rs..r * c_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(a.max_index() < a.data.len() && b.max_index() < b.data.len(), "gemm: operand too small");
    if vector_product(a, b, c, c_rs, accumulate, s) {
        return;
    }
    IN_GEMM.with(|f| f.set(true));
    // SAFETY: the asserts above keep every index the kernel touches inside the three slices, and
    // `c` does not alias `a` or `b` (it is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            s,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    IN_GEMM.with(|f| f.set(false));
}

/// Products with a dimension of 1 (the per-sample MLP's every product): a row vector times a matrix,
/// or an outer product. The `gemm` crate spends ~5x the arithmetic's time on packing and dispatch
/// there (measured: 65 us per per-sample step), so these run as plain dot / axpy loops instead.
/// Returns false for shapes it does not handle.
fn vector_product(a: Mat, b: Mat, c: &mut [f32], c_rs: usize, accumulate: bool, s: f32) -> bool {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 1 && b.cs == 1 {
        // c = Σ_p a[p]·b[p, :]: one contiguous axpy per row of b.
        let c = &mut c[..n];
        if !accumulate {
            c.fill(0.0);
        }
        for p in 0..k {
            axpy(s * a.data[p * a.cs], &b.data[p * b.rs..][..n], c);
        }
    } else if m == 1 && b.rs == 1 && a.cs == 1 {
        // c[j] = a · b[:, j], and column j of b is contiguous (b is a transposed row-major matrix).
        let a = &a.data[..k];
        for (j, o) in c[..n].iter_mut().enumerate() {
            let d = s * dot(a, &b.data[j * b.cs..][..k]);
            *o = if accumulate { *o + d } else { d };
        }
    } else if k == 1 && b.cs == 1 {
        // Outer product: row i of c gets a[i]·b.
        let b = &b.data[..n];
        for i in 0..m {
            let row = &mut c[i * c_rs..][..n];
            let alpha = s * a.data[i * a.rs];
            if accumulate {
                axpy(alpha, b, row);
            } else {
                for (o, &v) in row.iter_mut().zip(b) {
                    *o = alpha * v;
                }
            }
        }
    } else {
        return false;
    }
    true
}

/// y += alpha·x.
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

/// x·y with 16 partial sums, so the compiler may keep them in vector registers (a single running
/// sum fixes the order of additions and cannot be vectorised).
fn dot(x: &[f32], y: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let (xc, yc) = (x.chunks_exact(L), y.chunks_exact(L));
    let tail: f32 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (xs, ys) in xc.zip(yc) {
        for l in 0..L {
            acc[l] += xs[l] * ys[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Products with at least this many multiply-adds are split into row blocks run in parallel.
const PARALLEL_MIN_MACS: usize = 1 << 23;
/// Rows per block when splitting: fixed, so the split never depends on the thread count.
const ROWS_PER_BLOCK: usize = 16;

/// c(m, n) [+]= s·a·b, split over row blocks of `c` (each block an independent product) when large.
pub fn gemm_par(a: Mat, b: Mat, c: &mut [f32], accumulate: bool, s: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m * k * n < PARALLEL_MIN_MACS || m <= ROWS_PER_BLOCK || super::par::threads() == 1 {
        return gemm_scaled(a, b, c, n, accumulate, s);
    }
    super::par::for_each_chunk(&mut c[..m * n], ROWS_PER_BLOCK * n, |i, cb| {
        let r0 = i * ROWS_PER_BLOCK;
        let rows = cb.len() / n;
        let a_blk = Mat { data: &a.data[r0 * a.rs..], rows, ..a };
        gemm_scaled(a_blk, b, cb, n, accumulate, s);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat, b: Mat) -> Vec<f32> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    c[i * b.cols + j] += a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs];
                }
            }
        }
        c
    }

    #[test]
    fn matches_naive_with_transposes_and_blocks() {
        let mut rng = crate::rng::Rng::new(5);
        let shapes = [(3, 4, 5), (1, 7, 1), (40, 300, 200), (100, 64, 513), (1, 784, 128), (1, 37, 10), (128, 1, 784)];
        for &(m, k, n) in &shapes {
            let av: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let bv: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = if ta { Mat::new(&av, k, m).t() } else { Mat::new(&av, m, k) };
                let b = if tb { Mat::new(&bv, n, k).t() } else { Mat::new(&bv, k, n) };
                let want = naive(a, b);
                let mut c = vec![1.0; m * n];
                gemm_par(a, b, &mut c, false, 1.0);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-3 * (1.0 + y.abs()), "{x} vs {y}");
                }
                gemm_par(a, b, &mut c, true, 1.0);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 2e-3 * (1.0 + y.abs()));
                }
            }
        }
    }
}
