//! Fully connected layer, PyTorch's `nn.Linear`.

use super::{Ctx, Layer, Param, ParamMut};
use crate::error::Result;
use crate::ops;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// y = x·wᵀ + b.  x: (n, inp)  w: (out, inp)  b: (out)  y: (n, out)
pub struct Dense {
    w: Param,
    b: Param,
}

impl Dense {
    /// He initialisation, N(0, 2/inp), zero bias (the original's).
    pub fn new(inp: usize, out: usize, rng: &mut Rng) -> Self {
        let std = (2.0 / inp as f32).sqrt();
        Dense { w: Param::new(Tensor::randn(&[out, inp], std, rng)), b: Param::new(Tensor::zeros(&[out])) }
    }
}

impl Layer for Dense {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Ctx) -> Result<()> {
        ops::matmul(x, false, &self.w.value, true, y)?; // (n, out)
        ops::add_row_bias(y, &self.b.value)
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        ops::matmul(dy, true, x, false, &mut self.w.grad)?; // (out, inp)
        ops::sum_rows(dy, &mut self.b.grad)?; // (out)
        if let Some(dx) = dx {
            ops::matmul(dy, false, &self.w.value, false, dx)?; // (n, inp)
        }
        Ok(())
    }

    fn fuses_sgd(&self) -> bool {
        true
    }

    fn backward_sgd(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>, lr: f32) -> Result<()> {
        if let Some(dx) = dx {
            ops::matmul(dy, false, &self.w.value, false, dx)?;
        }
        ops::add_matmul(dy, true, x, false, &mut self.w.value, -lr)?;
        ops::add_sum_rows(dy, -lr, &mut self.b.value)
    }

    fn params(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("weight", &self.w.value), ("bias", &self.b.value)]
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(ParamMut<'_>)) {
        f(self.w.lend("weight", true));
        f(self.b.lend("bias", false));
    }
}
