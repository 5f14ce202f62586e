//! Shape checks shared by the op families.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub(super) fn same_len(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::shape(op, a.shape(), b.shape()));
    }
    Ok(())
}
