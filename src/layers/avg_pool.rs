//! Average pooling: PyTorch's `nn.AvgPool2d` (no padding, floor) and `nn.AdaptiveAvgPool2d(1)`,
//! the global average over each channel.

use super::{Ctx, Layer};
use crate::error::Result;
use crate::ops::{self, Pool2dGeom};
use crate::tensor::Tensor;

/// x (n, c, h, w) -> y (n, c, oh, ow).
pub struct AvgPool2d {
    geom: Pool2dGeom,
}

impl AvgPool2d {
    pub fn new(geom: Pool2dGeom) -> Self {
        AvgPool2d { geom }
    }
}

impl Layer for AvgPool2d {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Ctx) -> Result<()> {
        ops::avg_pool2d(x, &self.geom, y)
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        match dx {
            Some(dx) => ops::avg_pool2d_backward(dy, &self.geom, dx),
            None => Ok(()),
        }
    }
}

/// x (n, c, h, w) -> y (n, c, 1, 1).
pub struct GlobalAvgPool;

impl Layer for GlobalAvgPool {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Ctx) -> Result<()> {
        ops::global_avg_pool(x, y)
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        match dx {
            Some(dx) => ops::global_avg_pool_backward(dy, x.shape(), dx),
            None => Ok(()),
        }
    }
}
