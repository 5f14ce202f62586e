//! Matrix products: c = op(a)·op(b), and c += s·op(a)·op(b). CPU: `cpu::gemm`; GPU: tiled
//! WGSL products.

use super::cpu::{self, gemm::Mat};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Treats a tensor as a matrix (first dimension, product of the rest), transposed if asked.
fn as_mat(t: &Tensor, trans: bool) -> Mat<'_> {
    let m = Mat::new(t.data(), t.rows(), t.row_len());
    if trans { m.t() } else { m }
}

/// c = op(a)·op(b), operands read as matrices (rows = first dimension); `c` is resized to (m, n).
pub fn matmul(a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool, c: &mut Tensor) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !a.is_host() {
        let (m, k) = if trans_a { (a.row_len(), a.rows()) } else { (a.rows(), a.row_len()) };
        let (kb, n) = if trans_b { (b.row_len(), b.rows()) } else { (b.rows(), b.row_len()) };
        if k != kb {
            return Err(Error::shape("matmul", &[m, k], &[kb, n]));
        }
        return on_gpu::matmul(a, trans_a, b, trans_b, c, [m, n]);
    }
    let (a, b) = (as_mat(a, trans_a), as_mat(b, trans_b));
    if a.cols != b.rows {
        return Err(Error::shape("matmul", &[a.rows, a.cols], &[b.rows, b.cols]));
    }
    c.resize(&[a.rows, b.cols]);
    cpu::gemm::gemm_par(a, b, c.data_mut(), false, 1.0);
    Ok(())
}

/// c += s·op(a)·op(b) (c already shaped (m, n)): a scaled product added in place, e.g. an SGD
/// step θ -= lr·∇θ applied straight from the factors of the gradient.
pub fn add_matmul(a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool, c: &mut Tensor, s: f32) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !a.is_host() {
        let (m, k) = if trans_a { (a.row_len(), a.rows()) } else { (a.rows(), a.row_len()) };
        let (kb, n) = if trans_b { (b.row_len(), b.rows()) } else { (b.rows(), b.row_len()) };
        if k != kb || c.rows() != m || c.row_len() != n {
            return Err(Error::shape("add_matmul", &[m, k, kb, n], c.shape()));
        }
        return on_gpu::add_matmul(a, trans_a, b, trans_b, c, s);
    }
    let (a, b) = (as_mat(a, trans_a), as_mat(b, trans_b));
    if a.cols != b.rows || c.rows() != a.rows || c.row_len() != b.cols {
        return Err(Error::shape("add_matmul", &[a.rows, a.cols, b.rows, b.cols], c.shape()));
    }
    cpu::gemm::gemm_par(a, b, c.data_mut(), true, s);
    Ok(())
}

/// The GPU side: each operand's device buffer (every operand on the GPU of the first), outputs
/// shaped there, handed to the kernels of [`crate::ops::gpu`].
#[cfg(feature = "gpu")]
mod on_gpu {
    use crate::error::Result;
    use crate::ops::device::{on, output};
    use crate::ops::gpu::{self, GpuBuffer, GpuMat};
    use crate::tensor::Tensor;

    /// A tensor as a matrix (first dimension, product of the rest), transposed if asked.
    fn mat<'a>(b: &'a GpuBuffer, t: &Tensor, trans: bool) -> GpuMat<'a> {
        let m = GpuMat::new(b, t.rows(), t.row_len());
        if trans { m.t() } else { m }
    }

    pub fn matmul(
        a: &Tensor,
        trans_a: bool,
        b: &Tensor,
        trans_b: bool,
        c: &mut Tensor,
        shape: [usize; 2],
    ) -> Result<()> {
        let (ab, bb) = (on("matmul", a)?, on("matmul", b)?);
        let cb = output(c, &shape, &ab)?;
        gpu::matmul(mat(&ab, a, trans_a), mat(&bb, b, trans_b), &cb, 0, false, 1.0)
    }

    pub fn add_matmul(a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool, c: &Tensor, s: f32) -> Result<()> {
        let (ab, bb, cb) = (on("add_matmul", a)?, on("add_matmul", b)?, on("add_matmul", c)?);
        gpu::matmul(mat(&ab, a, trans_a), mat(&bb, b, trans_b), &cb, 0, true, s)
    }
}
