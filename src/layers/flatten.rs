//! (n, c, h, w) -> (n, c·h·w), PyTorch's `nn.Flatten`.

use super::{Ctx, Layer, PassThrough};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

pub struct Flatten;

impl Layer for Flatten {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Ctx) -> Result<()> {
        ops::copy_reshaped(x, &[x.rows(), x.row_len()], y)
    }

    fn eval_passes_through(&mut self) -> Option<PassThrough> {
        Some(PassThrough::Flatten)
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        match dx {
            Some(dx) => ops::copy_reshaped(dy, x.shape(), dx),
            None => Ok(()),
        }
    }
}
