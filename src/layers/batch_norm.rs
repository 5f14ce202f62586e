//! Batch normalisation, PyTorch's `nn.BatchNorm2d` / `nn.BatchNorm1d`: in training each channel
//! is normalised with its batch mean and variance, and running estimates of both are kept
//! (momentum, unbiased variance); in evaluation the running estimates are used. A learnable scale
//! (`weight`) and shift (`bias`), optionally followed by a leaky ReLU it absorbs.

use super::{Ctx, Layer, Param, ParamMut};
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::Tensor;

/// The state_dict entry of a batch norm's step counter: a 0-dimensional int64 in PyTorch.
pub const BATCH_COUNT: &str = "num_batches_tracked";

/// x (n, c, h, w) or (n, c) -> y of the same shape.
pub struct BatchNorm {
    c: usize,
    eps: f32,
    momentum: f32,
    gamma: Param,
    beta: Param,
    running_mean: Tensor,
    running_var: Tensor,
    /// Training steps taken (PyTorch's `num_batches_tracked`), a host tensor of shape [].
    batches: Tensor,
    /// The statistics the last forward pass used (the batch's, or copies of the running ones).
    mean: Tensor,
    var: Tensor,
    /// Whether the last forward pass used batch statistics (None: no forward pass yet).
    batch_stats: Option<bool>,
    activation: Option<f32>,
    scratch: ops::NormScratch,
}

impl BatchNorm {
    /// Scale 1, shift 0, running mean 0 and variance 1, as PyTorch initialises them.
    pub fn new(c: usize, eps: f32, momentum: f32) -> Self {
        let ones = || Tensor::from_vec(&[c], vec![1.0; c]).expect("c values");
        BatchNorm {
            c,
            eps,
            momentum,
            gamma: Param::new(ones()),
            beta: Param::new(Tensor::zeros(&[c])),
            running_mean: Tensor::zeros(&[c]),
            running_var: ones(),
            batches: Tensor::zeros(&[]),
            mean: Tensor::default(),
            var: Tensor::default(),
            batch_stats: None,
            activation: None,
            scratch: ops::NormScratch::default(),
        }
    }
}

impl Layer for BatchNorm {
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Ctx) -> Result<()> {
        if ctx.train {
            if x.len() <= self.c {
                // One value per channel has no variance: the output would be β whatever x is.
                return Err(Error::InvalidArgument {
                    op: "batch norm",
                    msg: format!(
                        "a training batch of shape {:?} has one value per channel, so it has no variance (a batch \
                         of 1 image before a batch_norm1d, or a last batch of 1): use a batch size that leaves \
                         no batch of 1",
                        x.shape()
                    ),
                });
            }
            ops::channel_moments(x, self.c, &mut self.mean, &mut self.var, &mut self.scratch)?;
            let count = x.len() / self.c;
            ops::update_running(
                (&mut self.running_mean, &mut self.running_var),
                (&self.mean, &self.var),
                self.momentum,
                count,
            )?;
            // A host tensor this layer made (it never moves to a device): read in place.
            let done = self.batches.host().and_then(|v| v.first()).copied().unwrap_or(0.0);
            ops::fill(&mut self.batches, done + 1.0)?;
            self.batch_stats = Some(true);
            ops::batch_norm(
                x,
                (&self.mean, &self.var),
                (&self.gamma.value, &self.beta.value),
                self.eps,
                self.activation,
                y,
                &mut self.scratch,
            )
        } else {
            self.batch_stats = Some(false);
            ops::batch_norm(
                x,
                (&self.running_mean, &self.running_var),
                (&self.gamma.value, &self.beta.value),
                self.eps,
                self.activation,
                y,
                &mut self.scratch,
            )
        }
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) -> Result<()> {
        let Some(batch_stats) = self.batch_stats else { return Err(Error::NoForward("batch_norm")) };
        let stats = if batch_stats { (&self.mean, &self.var) } else { (&self.running_mean, &self.running_var) };
        ops::batch_norm_backward(
            x,
            y,
            dy,
            stats,
            &self.gamma.value,
            self.eps,
            self.activation,
            batch_stats,
            (&mut self.gamma.grad, &mut self.beta.grad),
            dx,
            &mut self.scratch,
        )
    }

    fn fuse_leaky_relu(&mut self, slope: Option<f32>) -> bool {
        self.activation = slope;
        true
    }

    fn params(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("weight", &self.gamma.value), ("bias", &self.beta.value)]
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(ParamMut<'_>)) {
        // Weight decay would pull the scale towards 0, which the normalisation undoes anyway
        // (only the effective learning rate changes): off unless asked (`decay_norm`).
        f(self.gamma.lend_norm("weight"));
        f(self.beta.lend_norm("bias"));
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("running_mean", &self.running_mean), ("running_var", &self.running_var), (BATCH_COUNT, &self.batches)]
    }

    fn visit_buffers_mut(&mut self, f: &mut dyn FnMut(&'static str, &mut Tensor)) {
        f("running_mean", &mut self.running_mean);
        f("running_var", &mut self.running_var);
        f(BATCH_COUNT, &mut self.batches);
    }
}
