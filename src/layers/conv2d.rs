//! 2-D convolution, PyTorch's `nn.Conv2d`, computed by im2col + GEMM (see `ops::cpu::conv`).

use super::{Ctx, Layer, Param, ParamMut};
use crate::error::Result;
use crate::ops::{self, Conv2dGeom, ConvScratch};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// x (n, c, h, w) -> y (n, f, oh, ow);  w (f, c, k, k), b (f).
pub struct Conv2d {
    geom: Conv2dGeom,
    w: Param,
    b: Param,
    scratch: ConvScratch,
}

impl Conv2d {
    /// He initialisation N(0, 2/(c·k·k)), zero bias. `geom` gives the per-image input size.
    pub fn new(geom: Conv2dGeom, rng: &mut Rng) -> Self {
        let std = (2.0 / geom.patch_len() as f32).sqrt();
        let w = Tensor::randn(&[geom.f, geom.c, geom.k, geom.k], std, rng);
        Conv2d { geom, w: Param::new(w), b: Param::new(Tensor::zeros(&[geom.f])), scratch: ConvScratch::default() }
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Ctx) -> Result<()> {
        ops::conv2d(x, &self.w.value, &self.b.value, &self.geom, &mut self.scratch, y)
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        ops::conv2d_backward(
            x,
            &self.w.value,
            dy,
            &self.geom,
            &mut self.scratch,
            &mut self.w.grad,
            &mut self.b.grad,
            dx,
        )
    }

    fn params(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("weight", &self.w.value), ("bias", &self.b.value)]
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(ParamMut<'_>)) {
        f(self.w.lend("weight", true));
        f(self.b.lend("bias", false));
    }
}
