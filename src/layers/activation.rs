//! Leaky ReLU (slope 0.01 in the original) and ReLU (slope 0).

use super::{Ctx, Layer};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

/// f(x) = x for x >= 0, slope·x otherwise; f'(x) = 1 or slope.
pub struct LeakyRelu {
    pub slope: f32,
}

impl Layer for LeakyRelu {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Ctx) -> Result<()> {
        ops::leaky_relu(x, self.slope, y)
    }

    fn backward(&mut self, _x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        match dx {
            Some(dx) => ops::leaky_relu_backward(y, dy, self.slope, dx),
            None => Ok(()),
        }
    }
}
