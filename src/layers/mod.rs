//! Layers with hand-written forward and backward passes.
//!
//! A layer reads its input `x` and writes its output `y` into buffers the model owns and reuses;
//! backward receives the same `x` and `y` back, so layers keep only what cannot be recomputed
//! cheaply (dropout's mask, max-pool's winners). Backward overwrites the parameter gradients (as the
//! original's `self.dW = ...`): no pass to clear them first, which was 9-16% of a per-sample step.

mod activation;
mod avg_pool;
mod batch_norm;
mod conv2d;
mod dense;
mod dropout;
mod flatten;
mod max_pool2d;

pub use activation::LeakyRelu;
pub use avg_pool::{AvgPool2d, GlobalAvgPool};
pub use batch_norm::{BATCH_COUNT, BatchNorm};
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use max_pool2d::MaxPool2d;

use crate::error::Result;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// What a forward pass needs besides its input.
pub struct Ctx<'a> {
    /// Training (dropout active) or evaluation.
    pub train: bool,
    /// The stream dropout masks are drawn from.
    pub rng: &'a mut Rng,
}

/// A trainable tensor with its gradient, as the optimizer sees it.
pub struct ParamMut<'a> {
    /// "weight" or "bias", as in PyTorch's state_dict.
    pub name: &'static str,
    pub value: &'a mut Tensor,
    pub grad: &'a mut Tensor,
    /// Whether L2 / weight decay applies: weights yes, biases no.
    pub decay: bool,
    /// A normalisation layer's scale or shift: decayed only when the recipe asks (`decay_norm`).
    pub norm: bool,
}

/// How a layer hands its input on in evaluation mode ([`Layer::eval_passes_through`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassThrough {
    /// Unchanged.
    Same,
    /// Reshaped to (n, everything else).
    Flatten,
}

pub trait Layer: Send {
    /// x (n, ...) -> y (n, ...).
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Ctx) -> Result<()>;

    /// Given dL/dy, writes the parameter gradients and dL/dx (skipped when `dx` is None: the
    /// model's first layer has no use for it).
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()>;

    /// Asks the layer to apply leaky ReLU with `slope` to its own output (None: stop): forward then
    /// writes the activated output, and backward receives that output as `y` and the gradient of
    /// it as `dy`. Returns whether the layer does so; [`crate::model::Sequential`] then skips the
    /// activation layer that follows, saving a pass over the activations each way.
    fn fuse_leaky_relu(&mut self, _slope: Option<f32>) -> bool {
        false
    }

    /// Asks the layer to apply, in evaluation mode only, the max-pool (kernel, stride) that follows
    /// it (after its fused activation, if any) to its own output (None: stop). Returns whether it
    /// does; [`crate::model::Sequential`] then skips the pooling layer in evaluation.
    fn fuse_max_pool(&mut self, _pool: Option<(usize, usize)>) -> bool {
        false
    }

    /// Whether, in evaluation mode, the layer only hands its input on (dropout), or flattens it
    /// (flatten): [`crate::model::Sequential`] then moves the buffer instead of copying it.
    fn eval_passes_through(&mut self) -> Option<PassThrough> {
        None
    }

    /// Whether [`Layer::backward_sgd`] can update this layer's parameters (layers without any can).
    fn fuses_sgd(&self) -> bool {
        self.params().is_empty()
    }

    /// Backward that applies plain SGD, θ -= lr·dL/dθ, to the parameters straight away instead of
    /// writing their gradients: one pass over each weight instead of three (write the gradient;
    /// read it and the weight; write the weight), which halves a per-sample step. Only called
    /// when [`Layer::fuses_sgd`]; dL/dx is computed from the weights before the update.
    fn backward_sgd(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>, _lr: f32) -> Result<()> {
        self.backward(x, y, dy, dx)
    }

    /// (name, value) of each parameter, in state_dict order.
    fn params(&self) -> Vec<(&'static str, &Tensor)> {
        Vec::new()
    }

    fn visit_params_mut(&mut self, _f: &mut dyn FnMut(ParamMut<'_>)) {}

    /// (name, value) of each buffer (state saved with the model but not trained: a batch norm's
    /// running statistics), in state_dict order, after the parameters.
    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        Vec::new()
    }

    fn visit_buffers_mut(&mut self, _f: &mut dyn FnMut(&'static str, &mut Tensor)) {}
}

/// A parameter and its gradient, stored together so `visit_params_mut` can lend both.
#[derive(Clone, Debug)]
pub(crate) struct Param {
    pub value: Tensor,
    pub grad: Tensor,
}

impl Param {
    pub fn new(value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param { value, grad }
    }
    pub fn lend(&mut self, name: &'static str, decay: bool) -> ParamMut<'_> {
        ParamMut { name, value: &mut self.value, grad: &mut self.grad, decay, norm: false }
    }
    /// A normalisation layer's parameter: not decayed unless the recipe asks.
    pub fn lend_norm(&mut self, name: &'static str) -> ParamMut<'_> {
        ParamMut { name, value: &mut self.value, grad: &mut self.grad, decay: false, norm: true }
    }
}

#[cfg(test)]
pub(crate) mod gradcheck;

#[cfg(test)]
mod tests;
