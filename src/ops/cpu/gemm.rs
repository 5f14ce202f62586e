//! Matrix products through the `gemm` crate (chosen over `matrixmultiply` for its speed on the
//! CNN's shapes, docs/ARCHITECTURE.md).
//!
//! Every matrix is given by a slice plus a row stride and a column stride, so transposed operands
//! cost nothing. We always call it single-threaded: the callers parallelise over independent row
//! blocks or images, which scales better on these shapes and keeps results thread-count independent.

use super::multiversion::multiversion;
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
    // SAFETY: by the asserts above, c[i·c_rs + j] (i < m, j < n) is inside `c`, and every index
    // the views of `a` and `b` reach is inside their slices; `c` is a unique borrow, so nothing
    // else reads or writes it during the call.
    unsafe { raw_gemm(a, b, c.as_mut_ptr(), c_rs, accumulate, s) }
}

/// The `gemm` crate's kernel on an output given by pointer and row stride.
///
/// # Safety
/// Every c[i·c_rs + j], i < a.rows, j < b.cols, must be valid to write and written by no one
/// else during the call; `a` and `b` must hold every index their views reach.
unsafe fn raw_gemm(a: Mat, b: Mat, c: *mut f32, c_rs: usize, accumulate: bool, s: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    IN_GEMM.with(|f| f.set(true));
    #[cfg(target_arch = "x86_64")]
    if super::isa::current() < super::isa::detected() {
        // SAFETY: as the caller promises; the level is at most what the CPU has.
        unsafe { capped::gemm(super::isa::current(), a, b, c, c_rs, accumulate, s) };
        IN_GEMM.with(|f| f.set(false));
        return;
    }
    // SAFETY: the caller vouches for every element these views and strides reach: c's with
    // column stride 1 and row stride c_rs, a's and b's with their own strides (the crate takes
    // column stride, then row stride).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
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

/// The `gemm` crate's kernel of a given instruction-set level, for a level capped below the
/// CPU's (`SCRATCHNET_MAX_CPU_ISA`): `gemm::gemm` always picks the best. The same code `gemm::gemm`
/// runs on a CPU of that level.
#[cfg(target_arch = "x86_64")]
mod capped {
    use super::Mat;
    use crate::ops::cpu::isa::Isa;
    use gemm_common::gemm::gemm_basic_generic;
    use gemm_common::simd::MixedSimd;

    /// c = s·a·b (+ c when `accumulate`), c row-major with row stride `c_rs`.
    ///
    /// # Safety
    /// As `raw_gemm`'s, and `isa` must not exceed what the CPU runs.
    pub unsafe fn gemm(isa: Isa, a: Mat, b: Mat, c: *mut f32, c_rs: usize, accumulate: bool, s: f32) {
        // gemm::gemm's own normalisation: with a row-major output, compute cᵀ = bᵀ·aᵀ, whose
        // output is column-major (strides are never negative here).
        let (m, n, k) = (b.cols, a.rows, a.cols);
        let (dst_cs, dst_rs) = (c_rs as isize, 1isize);
        let (lhs, lhs_cs, lhs_rs) = (b.data.as_ptr(), b.rs as isize, b.cs as isize);
        let (rhs, rhs_cs, rhs_rs) = (a.data.as_ptr(), a.rs as isize, a.cs as isize);
        macro_rules! run {
            ($simd:ty, $kernels:ident, $n:expr) => {{
                use gemm_f32::microkernel::$kernels::f32 as K;
                let Some(simd) = <$simd as MixedSimd<f32, f32, f32, f32>>::try_new() else {
                    unreachable!("the level is at most the CPU's")
                };
                // SAFETY: the caller's promises cover every index of the three operands.
                unsafe {
                    gemm_basic_generic::<
                        _,
                        f32,
                        { $n },
                        { K::MR_DIV_N * $n },
                        { K::NR },
                        { K::MR_DIV_N },
                        { K::H_M },
                        { K::H_N },
                    >(
                        simd,
                        m,
                        n,
                        k,
                        c,
                        dst_cs,
                        dst_rs,
                        accumulate,
                        lhs,
                        lhs_cs,
                        lhs_rs,
                        rhs,
                        rhs_cs,
                        rhs_rs,
                        1.0,
                        s,
                        false,
                        false,
                        false,
                        |x, y, z| x * y + z,
                        &K::UKR,
                        &K::H_UKR,
                        false,
                        gemm_common::Parallelism::None,
                    )
                }
            }};
        }
        match isa {
            Isa::Avx512 => run!(gemm_common::simd::V4, avx512f, 16),
            Isa::Avx2 => run!(gemm_common::simd::V3, fma, 8),
            Isa::Scalar | Isa::Neon => run!(gemm_common::simd::Scalar, scalar, 1),
        }
    }
}

multiversion! {
    /// Products with a dimension of 1 (the per-sample MLP's every product): a row vector times a matrix,
    /// or an outer product. There the `gemm` crate's packing and dispatch cost several times the
    /// arithmetic, so these run as plain dot / axpy loops instead.
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
}

/// y += alpha·x.
#[inline(always)]
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

/// x·y with 16 partial sums, so the compiler may keep them in vector registers (a single running
/// sum fixes the order of additions and cannot be vectorised).
#[inline(always)]
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

/// Products with at least this many multiply-adds are split into blocks, run in parallel.
const PARALLEL_MIN_MACS: usize = 1 << 21;

/// Blocks a product is split into: one per 4M multiply-adds, 2 to 8. Every block repacks the
/// operand it shares with the others, so small products get few blocks. The count depends on the
/// shape alone, never on the thread count: the `gemm` crate chooses how to block the inner
/// dimension (so the order of its sums) from a product's shape, so the blocks' shapes fix the
/// results' bits.
fn blocks(macs: usize) -> usize {
    (macs >> 22).clamp(2, 8)
}

/// The output pointer shared by the blocks of one product, each writing its own columns.
struct Out(*mut f32);
// SAFETY: `gemm_par` makes it from its `c`, borrowed mutably until its parallel loop has ended,
// so the pointer stays valid on whichever thread holds it.
unsafe impl Send for Out {}
// SAFETY: shared only by `gemm_par`'s blocks, which write disjoint columns through it.
unsafe impl Sync for Out {}
impl Out {
    /// The element `offset` floats past the start.
    ///
    /// # Safety
    /// `offset` is at most the length of the slice the pointer was taken from.
    unsafe fn at(&self, offset: usize) -> *mut f32 {
        // SAFETY: in bounds (or one past the end), as the caller promises.
        unsafe { self.0.add(offset) }
    }
}

/// c(m, n) [+]= s·a·b; when large, split along the longer side of c into independent products,
/// which one thread runs in turn (the split must not depend on the thread count, see `blocks`).
/// Every block packs the whole of the other operand, so splitting the short side would repack
/// the large one per block, which costs more than the split saves.
pub fn gemm_par(a: Mat, b: Mat, c: &mut [f32], accumulate: bool, s: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m * k * n < PARALLEL_MIN_MACS {
        return gemm_scaled(a, b, c, n, accumulate, s);
    }
    let blocks = blocks(m * k * n);
    if m >= n {
        let rows = m.div_ceil(blocks).next_multiple_of(16);
        super::par::for_each_chunk(&mut c[..m * n], rows * n, |i, cb| {
            let a_blk = Mat { data: &a.data[i * rows * a.rs..], rows: cb.len() / n, ..a };
            gemm_scaled(a_blk, b, cb, n, accumulate, s);
        });
        return;
    }
    assert!(b.rows == k && c.len() >= m * n, "gemm_par: shapes");
    assert!(a.max_index() < a.data.len() && b.max_index() < b.data.len(), "gemm_par: operand too small");
    let cols = n.div_ceil(blocks).next_multiple_of(16);
    let out = Out(c.as_mut_ptr());
    super::par::for_each_index(n.div_ceil(cols), |i| {
        let j0 = i * cols;
        let b_blk = Mat { data: &b.data[j0 * b.cs..], cols: cols.min(n - j0), ..b };
        // SAFETY: j0 < n ≤ c.len() (asserted above). Block i writes c[r·n + j0 + j] for r < m,
        // j < b_blk.cols ≤ n - j0: inside c (c.len() ≥ m·n, asserted) and disjoint from every
        // other block's columns; `c` stays borrowed mutably through the loop. b_blk's view
        // reaches no further than b's (max_index asserted); a and b are only read.
        unsafe { raw_gemm(a, b_blk, out.at(j0), n, accumulate, s) }
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
        // The last two are split in parallel (above PARALLEL_MIN_MACS): by rows, then by columns.
        let shapes = [
            (3, 4, 5),
            (1, 7, 1),
            (40, 300, 200),
            (100, 64, 513),
            (1, 784, 128),
            (1, 37, 10),
            (128, 1, 784),
            (530, 130, 130),
            (64, 1100, 250),
        ];
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
