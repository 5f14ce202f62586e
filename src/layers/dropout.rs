//! Inverted dropout: scales kept units by 1/(1-p) in training so evaluation is the identity.

use super::{Ctx, Layer, PassThrough};
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::Tensor;

pub struct Dropout {
    p: f32,
    /// 0 or 1/(1-p) per element, from the last training forward pass.
    mask: Tensor,
}

impl Dropout {
    pub fn new(p: f32) -> Self {
        Dropout { p, mask: Tensor::default() }
    }
}

impl Layer for Dropout {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Ctx) -> Result<()> {
        if ctx.train && self.p > 0.0 {
            ops::dropout(x, self.p, ctx.rng, &mut self.mask, y)
        } else {
            self.mask = Tensor::default();
            ops::copy_reshaped(x, x.shape(), y)
        }
    }

    fn eval_passes_through(&mut self) -> Option<PassThrough> {
        // As an evaluation-mode forward pass: no mask, so a backward pass after it is an error.
        self.mask = Tensor::default();
        Some(PassThrough::Same)
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        let Some(dx) = dx else { return Ok(()) };
        if self.p == 0.0 {
            return ops::copy_reshaped(dy, dy.shape(), dx);
        }
        if self.mask.len() != dy.len() {
            return Err(Error::NoForward("dropout (training mode)"));
        }
        ops::mul(dy, &self.mask, dx)
    }
}
