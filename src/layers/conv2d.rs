//! 2-D convolution, PyTorch's `nn.Conv2d` (algorithms: see `ops::cpu::conv`), optionally with the
//! leaky ReLU that follows it fused in, and in evaluation the max-pool after that.

use super::{Ctx, Layer, Param, ParamMut};
use crate::error::Result;
use crate::ops::{self, Conv2dGeom, ConvScratch, Pool2dGeom, PoolIndices};
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
    /// The max-pool applied to the output in evaluation (see [`Layer::fuse_max_pool`]).
    eval_pool: Option<EvalPool>,
}

/// Where the convolution cannot pool as it computes (on a GPU, or an algorithm without output
/// tiles), evaluation runs the two passes: the full output and the winners are kept here.
struct EvalPool {
    geom: Pool2dGeom,
    full: Tensor,
    argmax: PoolIndices,
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
            eval_pool: None,
        }
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Ctx) -> Result<()> {
        let (w, b, g, slope) = (&self.w.value, &self.b.value, &self.geom, self.activation);
        match &mut self.eval_pool {
            Some(p) if !ctx.train => {
                if ops::conv2d_fuses_max_pool(x, g, &p.geom) {
                    ops::conv2d_act_max_pool(x, w, b, g, slope, &p.geom, &mut self.scratch, y)
                } else {
                    ops::conv2d_act(x, w, b, g, slope, &mut self.scratch, &mut p.full)?;
                    ops::max_pool2d(&p.full, &p.geom, y, &mut p.argmax)
                }
            }
            _ => ops::conv2d_act(x, w, b, g, slope, &mut self.scratch, y),
        }
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

    /// Takes 2x2 pools of stride 2, the windows of the Winograd output tiles.
    fn fuse_max_pool(&mut self, pool: Option<(usize, usize)>) -> bool {
        let (h, w) = (self.geom.oh(), self.geom.ow());
        self.eval_pool = pool.filter(|&p| p == (2, 2) && h >= 2 && w >= 2).map(|(k, stride)| EvalPool {
            geom: Pool2dGeom { h, w, k, stride },
            full: Tensor::default(),
            argmax: PoolIndices::default(),
        });
        self.eval_pool.is_some()
    }

    fn params(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("weight", &self.w.value), ("bias", &self.b.value)]
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(ParamMut<'_>)) {
        f(self.w.lend("weight", true));
        f(self.b.lend("bias", false));
    }
}
