// Batch normalisation over x (n, c, plane), as src/ops/cpu/norm.rs: per-channel moments and the
// backward pass's per-channel sums are one workgroup per channel, each thread summing the
// channel's values j = t, t + 256, ... in order and a fixed tree adding the threads' sums (no
// atomics: repeated runs are bit-identical); the element-wise passes are one thread per value.
// Value j of a channel (j < n·plane) is x[(j / plane · c + ch) · plane + j % plane].

struct Params {
    // Values of x: n · c · plane.
    total: u32,
    c: u32,
    plane: u32,
    // Values per channel: n · plane.
    count: u32,
    eps: f32,
    // The leaky ReLU's slope after the normalisation, 1 for none.
    slope: f32,
    // Backward: whether the statistics were the batch's own (1) or constants (0).
    batch_stats: u32,
    // update_running: the momentum and the variance's unbiasing factor count / (count − 1).
    momentum: f32,
    unbias: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> var_: array<f32>;
@group(0) @binding(6) var<storage, read> gamma: array<f32>;
@group(0) @binding(7) var<storage, read> beta: array<f32>;
// The backward sums per channel: [Σ g, Σ g·(x − mean)].
@group(0) @binding(8) var<storage, read> sums: array<f32>;
// The element-wise output: y (forward) or dx (backward).
@group(0) @binding(9) var<storage, read_write> dst: array<f32>;
// Per-channel outputs: (mean, var) of moments, (dγ, dβ) of the backward sums, the running
// (mean, var) of update_running.
@group(0) @binding(10) var<storage, read_write> out_a: array<f32>;
@group(0) @binding(11) var<storage, read_write> out_b: array<f32>;
@group(0) @binding(12) var<storage, read_write> out_sums: array<f32>;

var<workgroup> part_a: array<f32, 256>;
var<workgroup> part_b: array<f32, 256>;

fn channel_index(ch: u32, j: u32) -> u32 {
    return (j / p.plane * p.c + ch) * p.plane + j % p.plane;
}

fn linear(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// part_a[0] = Σ part_a, part_b[0] = Σ part_b over the workgroup, by a fixed tree. Called by every
// thread t of the workgroup (uniform control flow).
fn tree(t: u32) {
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if t < half {
            part_a[t] += part_a[t + half];
            part_b[t] += part_b[t + half];
        }
        workgroupBarrier();
    }
}

// One workgroup per channel: mean = Σ x / count, then var = Σ (x − mean)² / count (two passes,
// accurate when the mean is large).
@compute @workgroup_size(256)
fn moments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) t: u32) {
    let ch = linear(wid, nwg);
    if ch >= p.c {
        return;
    }
    var s = 0.0;
    for (var j = t; j < p.count; j += 256u) {
        s += x[channel_index(ch, j)];
    }
    part_a[t] = s;
    part_b[t] = 0.0;
    tree(t);
    let m = part_a[0] / f32(p.count);
    // Every thread has read the mean before the partial sums are overwritten.
    workgroupBarrier();
    var q = 0.0;
    for (var j = t; j < p.count; j += 256u) {
        let d = x[channel_index(ch, j)] - m;
        q += d * d;
    }
    part_a[t] = q;
    tree(t);
    if t == 0u {
        out_a[ch] = m;
        out_b[ch] = part_a[0] / f32(p.count);
    }
}

// dst = y = act(x·scale + shift), scale = γ / √(var + eps), shift = β − mean·scale per channel.
@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) t: u32) {
    let i = linear(wid, nwg) * 256u + t;
    if i >= p.total {
        return;
    }
    let ch = i / p.plane % p.c;
    let scale = gamma[ch] / sqrt(var_[ch] + p.eps);
    let shift = beta[ch] - mean[ch] * scale;
    let z = x[i] * scale + shift;
    dst[i] = max(z, 0.0) + p.slope * min(z, 0.0);
}

// One thread per channel: running ← (1 − momentum)·running + momentum·batch, the batch variance
// times count / (count − 1).
@compute @workgroup_size(256)
fn update_running(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) t: u32) {
    let ch = linear(wid, nwg) * 256u + t;
    if ch >= p.c {
        return;
    }
    out_a[ch] = (1.0 - p.momentum) * out_a[ch] + p.momentum * mean[ch];
    out_b[ch] = (1.0 - p.momentum) * out_b[ch] + p.momentum * var_[ch] * p.unbias;
}

// The gradient before the activation: dy where y > 0, slope·dy elsewhere (the CPU's formula).
fn pre_act(i: u32) -> f32 {
    return dy[i] * (p.slope + (1.0 - p.slope) * select(0.0, 1.0, y[i] > 0.0));
}

// One workgroup per channel: Σ g and Σ g·(x − mean); writes dγ = Σ g·(x − mean) / √(var + eps),
// dβ = Σ g, and both sums for the input gradient.
@compute @workgroup_size(256)
fn backward_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) t: u32) {
    let ch = linear(wid, nwg);
    if ch >= p.c {
        return;
    }
    let m = mean[ch];
    var sg = 0.0;
    var sgx = 0.0;
    for (var j = t; j < p.count; j += 256u) {
        let i = channel_index(ch, j);
        let g = pre_act(i);
        sg += g;
        sgx += g * (x[i] - m);
    }
    part_a[t] = sg;
    part_b[t] = sgx;
    tree(t);
    if t == 0u {
        let invstd = 1.0 / sqrt(var_[ch] + p.eps);
        out_a[ch] = part_b[0] * invstd;
        out_b[ch] = part_a[0];
        out_sums[2u * ch] = part_a[0];
        out_sums[2u * ch + 1u] = part_b[0];
    }
}

// dst = dx = k·g + b·(x − mean) + e per channel, k = γ / √(var + eps); with batch statistics
// b = −k·Σ g·(x − mean) / (count·(var + eps)) and e = −k·Σ g / count, else b = e = 0.
@compute @workgroup_size(256)
fn backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
    let i = linear(wid, nwg) * 256u + t;
    if i >= p.total {
        return;
    }
    let ch = i / p.plane % p.c;
    let invstd = 1.0 / sqrt(var_[ch] + p.eps);
    let k = gamma[ch] * invstd;
    var v = k * pre_act(i);
    if p.batch_stats != 0u {
        let count = f32(p.count);
        let b = -k * invstd * invstd * sums[2u * ch + 1u] / count;
        let e = -k * sums[2u * ch] / count;
        v += b * (x[i] - mean[ch]) + e;
    }
    dst[i] = v;
}
