//! Optimizer updates: SGD (momentum, Nesterov, weight decay) and Adam / AdamW, the CPU's
//! formulas (src/ops/cpu/elementwise.rs).

use crate::error::Result;
use crate::ops::params::{AdamStep, SgdStep};
use crate::tensor::gpu::{Bind, GROUP, GpuBuffer, f, fits, u};

const SRC: &str = include_str!("optim.wgsl");

/// Params: n, lr, momentum, weight_decay, nesterov, beta1, beta2, eps, c1, c2, decoupled.
fn run(entry: &str, n: usize, words: [u32; 11], binds: &[(u32, Bind)]) -> Result<()> {
    let gpu = binds[0].1.buffer().gpu();
    let k = gpu.kernel("optim", entry, || SRC.to_string())?;
    let mut w = words;
    w[0] = u(n);
    gpu.dispatch(&k, &w, binds, gpu.grid(n.div_ceil(GROUP as usize) as u64)?)
}

/// One SGD update of param[..n]; `velocity` is the momentum buffer (None for plain SGD).
pub fn sgd_step(
    param: &GpuBuffer,
    grad: &GpuBuffer,
    velocity: Option<&GpuBuffer>,
    n: usize,
    h: &SgdStep,
) -> Result<()> {
    fits("sgd_step", "param", param, n)?;
    fits("sgd_step", "grad", grad, n)?;
    let words = [0, f(h.lr), f(h.momentum), f(h.weight_decay), h.nesterov as u32, 0, 0, 0, 0, 0, 0];
    match velocity {
        None => run("sgd", n, words, &[(3, Bind::W(param)), (1, Bind::R(grad))]),
        Some(v) => {
            fits("sgd_step", "velocity", v, n)?;
            run("sgd_momentum", n, words, &[(3, Bind::W(param)), (1, Bind::R(grad)), (4, Bind::W(v))])
        }
    }
}

/// One Adam update of param[..n] with moments m, v; `h.step` counts from 1.
pub fn adam_step(
    param: &GpuBuffer,
    grad: &GpuBuffer,
    m: &GpuBuffer,
    v: &GpuBuffer,
    n: usize,
    h: &AdamStep,
) -> Result<()> {
    for (what, b) in [("param", param), ("grad", grad), ("m", m), ("v", v)] {
        fits("adam_step", what, b, n)?;
    }
    // As the CPU computes them (WGSL's pow is not exactly rounded).
    let c1 = 1.0 - h.beta1.powi(h.step as i32);
    let c2 = 1.0 - h.beta2.powi(h.step as i32);
    let words =
        [0, f(h.lr), 0, f(h.weight_decay), 0, f(h.beta1), f(h.beta2), f(h.eps), f(c1), f(c2), h.decoupled as u32];
    run("adam", n, words, &[(3, Bind::W(param)), (1, Bind::R(grad)), (4, Bind::W(m)), (5, Bind::W(v))])
}
