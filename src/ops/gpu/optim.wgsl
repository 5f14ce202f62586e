// Optimizer updates with the CPU's formulas, term for term (src/ops/cpu/elementwise.rs).

struct Params {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    // Adam's bias corrections 1 - β^step, computed on the host as the CPU does.
    c1: f32,
    c2: f32,
    decoupled: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

// θ -= lr·(g + λ·θ).
@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let t = param[i];
    param[i] = t - p.lr * (grad[i] + p.weight_decay * t);
}

// The original's momentum form: v = μ·v - lr·g ; θ += v (Nesterov: θ += μ·v - lr·g), with
// g = grad + λ·θ; a velocity in the subnormal range is flushed to 0, as on the CPU. m: the velocity.
@compute @workgroup_size(256)
fn sgd_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let t = param[i];
    let g = grad[i] + p.weight_decay * t;
    let vel = p.momentum * m[i] - p.lr * g;
    let kept = select(vel, 0.0, abs(vel) < 1.17549435e-38);
    m[i] = kept;
    if p.nesterov != 0u {
        param[i] = t + (p.momentum * kept - p.lr * g);
    } else {
        param[i] = t + kept;
    }
}

// Adam with bias correction; decoupled: AdamW (decay applied to θ, not mixed into g).
@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    var t = param[i];
    var g = grad[i];
    if p.decoupled != 0u {
        t -= p.lr * p.weight_decay * t;
    } else {
        g += p.weight_decay * t;
    }
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = t - p.lr * (mi / p.c1) / (sqrt(vi / p.c2) + p.eps);
}
