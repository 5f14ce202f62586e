//! 2-D convolution, PyTorch's `nn.Conv2d` (algorithms: see `ops::cpu::conv`), optionally with the
//! leaky ReLU that follows it fused in.

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
    /// Slope of a leaky ReLU applied to the output (see [`Layer::fuse_leaky_relu`]).
    activation: Option<f32>,
}

impl Conv2d {
    /// He initialisation N(0, 2/(c·k·k)), zero bias. `geom` gives the per-image input size.
    pub fn new(geom: Conv2dGeom, rng: &mut Rng) -> Self {
        let std = (2.0 / geom.patch_len() as f32).sqrt();
        let w = Tensor::randn(&[geom.f, geom.c, geom.k, geom.k], std, rng);
        Conv2d {
            geom,
            w: Param::new(w),
            b: Param::new(Tensor::zeros(&[geom.f])),
            scratch: ConvScratch::default(),
            activation: None,
        }
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Ctx) -> Result<()> {
        ops::conv2d_act(x, &self.w.value, &self.b.value, &self.geom, self.activation, &mut self.scratch, y)
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        ops::conv2d_act_backward(
            x,
            &self.w.value,
            self.activation.map(|slope| (slope, y)),
            dy,
            &self.geom,
            &mut self.scratch,
            &mut self.w.grad,
            &mut self.b.grad,
            dx,
        )
    }

    fn fuse_leaky_relu(&mut self, slope: Option<f32>) -> bool {
        self.activation = slope;
        true
    }

    fn params(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("weight", &self.w.value), ("bias", &self.b.value)]
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(ParamMut<'_>)) {
        f(self.w.lend("weight", true));
        f(self.b.lend("bias", false));
    }
}
