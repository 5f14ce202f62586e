//! Optimizer updates, one pass over each parameter: SGD (momentum, Nesterov, weight decay) and
//! Adam / AdamW. Large tensors are split in fixed chunks across threads; element-wise work gives
//! the same bits whatever the split.

use super::multiversion::multiversion;
use super::par::{for_each_chunk, for_each_chunk2};
use crate::ops::params::{AdamStep, SgdStep};

/// Optimizer updates touch three or four arrays per element: larger chunks, fewer hand-offs.
const UPDATE_CHUNK: usize = 1 << 15;

/// The original's momentum form: v = μ·v - lr·g ; θ += v (Nesterov: θ += μ·v - lr·g), with
/// g = grad + λ·θ. Without a velocity buffer (μ = 0): θ -= lr·g. Parallel over fixed chunks.
pub fn sgd(p: &mut [f32], g: &[f32], v: Option<&mut [f32]>, h: &SgdStep) {
    match v {
        None => for_each_chunk(p, UPDATE_CHUNK, |c, p| sgd_plain(p, &g[c * UPDATE_CHUNK..], h)),
        Some(v) => {
            for_each_chunk2(p, UPDATE_CHUNK, v, UPDATE_CHUNK, |c, p, v| sgd_momentum(p, &g[c * UPDATE_CHUNK..], v, h))
        }
    }
}

multiversion! {
    fn sgd_plain(p: &mut [f32], g: &[f32], h: &SgdStep) {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= h.lr * (g + h.weight_decay * *p);
        }
    }
}

multiversion! {
    fn sgd_momentum(p: &mut [f32], g: &[f32], v: &mut [f32], h: &SgdStep) {
        // One loop per case: the compiler cannot drop g + 0·θ itself (0·θ is not 0 for an
        // infinite θ), and it is 2 of the loop's ~9 operations in the MLPs, which have no decay.
        match (h.weight_decay != 0.0, h.nesterov) {
            (false, false) => sgd_momentum_loop::<false, false>(p, g, v, h),
            (false, true) => sgd_momentum_loop::<false, true>(p, g, v, h),
            (true, false) => sgd_momentum_loop::<true, false>(p, g, v, h),
            (true, true) => sgd_momentum_loop::<true, true>(p, g, v, h),
        }
    }
}

#[inline(always)]
fn sgd_momentum_loop<const DECAY: bool, const NESTEROV: bool>(p: &mut [f32], g: &[f32], v: &mut [f32], h: &SgdStep) {
    for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
        let g = if DECAY { g + h.weight_decay * *p } else { g };
        let vel = h.momentum * *v - h.lr * g;
        // A velocity left to decay (gradient ~0) sinks into the subnormal range, where x86
        // arithmetic is many times slower (BENCHMARKS.md); flush it to zero there.
        *v = if vel.abs() < f32::MIN_POSITIVE { 0.0 } else { vel };
        *p += if NESTEROV { h.momentum * *v - h.lr * g } else { *v };
    }
}

multiversion! {
    /// Adam with bias correction; `decoupled` makes it AdamW (decay applied to θ, not mixed into g).
    pub fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamStep) {
        let c1 = 1.0 - h.beta1.powi(h.step as i32);
        let c2 = 1.0 - h.beta2.powi(h.step as i32);
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = if h.decoupled { g } else { g + h.weight_decay * *p };
            if h.decoupled {
                *p -= h.lr * h.weight_decay * *p;
            }
            *m = h.beta1 * *m + (1.0 - h.beta1) * g;
            *v = h.beta2 * *v + (1.0 - h.beta2) * g * g;
            *p -= h.lr * (*m / c1) / ((*v / c2).sqrt() + h.eps);
        }
    }
}
