//! Matrix products: the tiled core of gemm.wgsl, shared with the convolutions (conv.rs), and
//! the plain matmul c (m, n) [+]= s·op(a)·op(b) on row-major buffers.

use crate::error::{Error, Result};
use crate::tensor::gpu::{Bind, Gpu, GpuBuffer, f, fits, u};

pub(crate) const PARAMS_SRC: &str = include_str!("gemm_params.wgsl");
const CORE_SRC: &str = include_str!("gemm.wgsl");
const MATMUL_SRC: &str = include_str!("gemm_matmul.wgsl");

/// Products with fewer 64 x 64 output tiles (times splits) than this take 32 x 32 tiles: more
/// workgroups for a large GPU. Either way each output is the same sum in the same order.
const SMALL: usize = 64;

/// gemm_params.wgsl's `Params`: a product's sizes, offsets and scale, and for convolutions their
/// geometry.
#[derive(Default, Clone, Copy)]
pub(crate) struct GemmParams {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a_off: usize,
    pub b_off: usize,
    pub c_off: usize,
    pub lda: usize,
    pub ldb: usize,
    pub accumulate: bool,
    pub s: f32,
    pub slope: f32,
    pub conv: Option<crate::ops::params::Conv2dGeom>,
    pub images: usize,
    pub splits: usize,
    pub k_split: usize,
    /// Outputs per thread along each side (gemm.wgsl's T): 4 or 2; 0 picks by size.
    pub per_thread: usize,
}

impl GemmParams {
    pub(crate) fn words(&self) -> [u32; 24] {
        let g = self.conv.unwrap_or(crate::ops::params::Conv2dGeom { c: 0, h: 0, w: 0, f: 0, k: 0, stride: 1, pad: 0 });
        let (oh, ow) = if g.k == 0 { (0, 0) } else { (g.oh(), g.ow()) };
        [
            u(self.m),
            u(self.n),
            u(self.k),
            u(self.n.div_ceil(16 * self.per_thread.max(1))),
            u(self.a_off),
            u(self.b_off),
            u(self.c_off),
            u(self.lda),
            u(self.ldb),
            self.accumulate as u32,
            f(self.s),
            f(self.slope),
            u(g.c),
            u(g.h),
            u(g.w),
            u(g.f),
            u(g.k),
            u(g.stride),
            u(g.pad),
            u(oh),
            u(ow),
            u(self.splits.max(1)),
            u(self.k_split),
            u(self.images),
        ]
    }
}

/// Records the product of variant `module` (its source: `variant`, after the specialisation
/// `prefix`): m x n outputs in 64 x 64 tiles, k split `p.splits` ways (at least one).
pub(crate) fn run_gemm(
    gpu: &Gpu,
    module: &str,
    prefix: impl FnOnce() -> String,
    variant: &str,
    mut p: GemmParams,
    binds: &[(u32, Bind)],
) -> Result<()> {
    if p.m == 0 || p.n == 0 {
        return Ok(());
    }
    p.splits = p.splits.max(1);
    p.k_split = p.k.div_ceil(p.splits);
    if p.per_thread == 0 {
        p.per_thread = if p.m.div_ceil(64) * p.n.div_ceil(64) * p.splits < SMALL { 2 } else { 4 };
    }
    let t = p.per_thread;
    let (bm, ld) = (16 * t, 16 * t + 4);
    let k = gpu.kernel(&format!("{module}_t{t}"), "main", || {
        let tile = format!(
            "const T: u32 = {t}u;\nconst BM: u32 = {bm}u;\nconst LD: u32 = {ld}u;\n\
             const TILE_LEN: u32 = {}u;\nconst ACC_LEN: u32 = {}u;\n",
            16 * ld,
            t * t
        );
        format!("{}{tile}\n{PARAMS_SRC}\n{variant}\n{CORE_SRC}", prefix())
    })?;
    let mut grid = gpu.grid((p.m.div_ceil(bm) * p.n.div_ceil(bm)) as u64)?;
    grid[2] = u(p.splits);
    gpu.dispatch(&k, &p.words(), binds, grid)
}

/// A row-major matrix (`rows`, `cols`) stored from `offset` of a buffer, used transposed when
/// `trans`.
#[derive(Clone, Copy)]
pub struct GpuMat<'a> {
    pub buf: &'a GpuBuffer,
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub trans: bool,
}

impl<'a> GpuMat<'a> {
    pub fn new(buf: &'a GpuBuffer, rows: usize, cols: usize) -> Self {
        GpuMat { buf, offset: 0, rows, cols, trans: false }
    }
    /// Stored from value `offset` of the buffer.
    pub fn at(self, offset: usize) -> Self {
        GpuMat { offset, ..self }
    }
    /// The transpose, as a view.
    pub fn t(self) -> Self {
        GpuMat { trans: !self.trans, ..self }
    }
    /// (rows, cols) of the matrix as used.
    fn shape(&self) -> (usize, usize) {
        if self.trans { (self.cols, self.rows) } else { (self.rows, self.cols) }
    }
}

/// c (m, n), stored from `c_offset` = s·op(a)·op(b), or c + s·op(a)·op(b) when `accumulate`.
pub fn matmul(a: GpuMat, b: GpuMat, c: &GpuBuffer, c_offset: usize, accumulate: bool, s: f32) -> Result<()> {
    matmul_tiles(a, b, c, c_offset, accumulate, s, 0)
}

/// [`matmul`] with `per_thread` outputs per thread along each side (0: by size).
pub(crate) fn matmul_tiles(
    a: GpuMat,
    b: GpuMat,
    c: &GpuBuffer,
    c_offset: usize,
    accumulate: bool,
    s: f32,
    per_thread: usize,
) -> Result<()> {
    let ((m, k), (kb, n)) = (a.shape(), b.shape());
    if k != kb {
        return Err(Error::shape("gpu matmul", &[m, k], &[kb, n]));
    }
    fits("matmul", "a", a.buf, a.offset + a.rows * a.cols)?;
    fits("matmul", "b", b.buf, b.offset + b.rows * b.cols)?;
    fits("matmul", "c", c, c_offset + m * n)?;
    let p = GemmParams {
        m,
        n,
        k,
        a_off: a.offset,
        b_off: b.offset,
        c_off: c_offset,
        lda: a.cols,
        ldb: b.cols,
        accumulate,
        s,
        per_thread,
        ..GemmParams::default()
    };
    let (ta, tb) = (a.trans, b.trans);
    run_gemm(
        a.buf.gpu(),
        &format!("matmul_{}{}", ta as u8, tb as u8),
        || format!("const TRANS_A: bool = {ta};\nconst TRANS_B: bool = {tb};\n"),
        MATMUL_SRC,
        p,
        &[(1, Bind::R(a.buf)), (2, Bind::R(b.buf)), (3, Bind::W(c))],
    )
}
