//! Optimizer updates: one SGD (momentum, Nesterov, weight decay) or Adam / AdamW step per
//! parameter.

use super::check::same_len;
use super::cpu;
use super::params::{AdamStep, SgdStep};
use crate::error::Result;
use crate::tensor::Tensor;

/// One SGD update; `velocity` is the momentum buffer (None for plain SGD).
pub fn sgd_step(param: &mut Tensor, grad: &Tensor, velocity: Option<&mut Tensor>, h: &SgdStep) -> Result<()> {
    same_len("sgd_step", param, grad)?;
    if let Some(v) = &velocity {
        same_len("sgd_step", param, v)?;
    }
    #[cfg(feature = "gpu")]
    if !param.is_host() {
        return on_gpu::sgd_step(param, grad, velocity.map(|v| &*v), h);
    }
    cpu::optim::sgd(param.data_mut(), grad.data(), velocity.map(|v| v.data_mut()), h);
    Ok(())
}

pub fn adam_step(param: &mut Tensor, grad: &Tensor, m: &mut Tensor, v: &mut Tensor, h: &AdamStep) -> Result<()> {
    same_len("adam_step", param, grad)?;
    same_len("adam_step", param, m)?;
    same_len("adam_step", param, v)?;
    #[cfg(feature = "gpu")]
    if !param.is_host() {
        return on_gpu::adam_step(param, grad, m, v, h);
    }
    cpu::optim::adam(param.data_mut(), grad.data(), m.data_mut(), v.data_mut(), h);
    Ok(())
}

/// The GPU side: each operand's device buffer (every operand on the GPU of the first), outputs
/// shaped there, handed to the kernels of [`crate::ops::gpu`].
#[cfg(feature = "gpu")]
mod on_gpu {
    use crate::error::Result;
    use crate::ops::device::on;
    use crate::ops::gpu;
    use crate::ops::params::{AdamStep, SgdStep};
    use crate::tensor::Tensor;

    pub fn sgd_step(param: &Tensor, grad: &Tensor, velocity: Option<&Tensor>, h: &SgdStep) -> Result<()> {
        let v = velocity.map(|v| on("sgd_step", v)).transpose()?;
        gpu::sgd_step(&on("sgd_step", param)?, &on("sgd_step", grad)?, v.as_ref(), param.len(), h)
    }

    pub fn adam_step(param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, h: &AdamStep) -> Result<()> {
        let (pb, gb) = (on("adam_step", param)?, on("adam_step", grad)?);
        gpu::adam_step(&pb, &gb, &on("adam_step", m)?, &on("adam_step", v)?, param.len(), h)
    }
}
