//! Max pooling, PyTorch's `nn.MaxPool2d` (no padding, floor).

use super::{Ctx, Layer};
use crate::error::{Error, Result};
use crate::ops::{self, Pool2dGeom, PoolIndices};
use crate::tensor::Tensor;

/// x (n, c, h, w) -> y (n, c, oh, ow). Keeps the index of each window's maximum for backward.
pub struct MaxPool2d {
    geom: Pool2dGeom,
    argmax: PoolIndices,
}

impl MaxPool2d {
    pub fn new(geom: Pool2dGeom) -> Self {
        MaxPool2d { geom, argmax: PoolIndices::default() }
    }
}

impl Layer for MaxPool2d {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Ctx) -> Result<()> {
        ops::max_pool2d(x, &self.geom, y, &mut self.argmax)
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        if self.argmax.len() != dy.len() {
            return Err(Error::NoForward("max_pool2d"));
        }
        match dx {
            Some(dx) => ops::max_pool2d_backward(dy, &self.argmax, &self.geom, dx),
            None => Ok(()),
        }
    }
}
