// Element-wise kernels, one thread per element, one entry point each. An entry point's bind group
// holds only the bindings it uses. Formulas are the CPU's (src/ops/cpu/elementwise.rs), term for
// term.

struct Params {
    n: u32,
    cols: u32,
    s: f32,
    k0: u32,
    k1: u32,
    threshold: u32,
    x_off: u32,
    y_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> x2: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> y2: array<f32>;

// Chris Wellons' "lowbias32", as in the CPU's dropout.
fn hash32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    return h ^ (h >> 16u);
}

// The linear index of a thread of a grid folded into two dimensions (see `Gpu::grid`).
fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    y[i] = p.s;
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    y[p.y_off + i] = x[p.x_off + i];
}

@compute @workgroup_size(256)
fn add_row_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    y[i] += x[i % p.cols];
}

@compute @workgroup_size(256)
fn leaky_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let v = x[i];
    y[i] = max(v, 0.0) + p.s * min(v, 0.0);
}

@compute @workgroup_size(256)
fn leaky_relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    // x: the activation's output, x2: its gradient.
    let positive = select(0.0, 1.0, x[i] > 0.0);
    y[i] = x2[i] * (p.s + (1.0 - p.s) * positive);
}

@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    y[i] = x[i] * x2[i];
}

@compute @workgroup_size(256)
fn average_into(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    y[i] = 0.5 * (y[i] + x[i]);
}

@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    y[i] += p.s * x[i];
}

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    // y: the mask, 0 or s = 1/(1-p); y2 = x·mask. u > p compared as 24-bit integers.
    let u = hash32(hash32(i ^ p.k0) ^ p.k1) >> 8u;
    let m = p.s * select(0.0, 1.0, u > p.threshold);
    y[i] = m;
    y2[i] = x[i] * m;
}

@compute @workgroup_size(256)
fn flip_width(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    // n = rows · (w / 2): each thread swaps one mirrored pair.
    let half = p.cols / 2u;
    let a = (i / half) * p.cols + i % half;
    let b = (i / half) * p.cols + p.cols - 1u - i % half;
    let t = y[a];
    y[a] = y[b];
    y[b] = t;
}

@compute @workgroup_size(256)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    // One thread per column (n = cols, k1 rows), rows added in order to y[i] (kept if k0 != 0,
    // else 0): the CPU's order.
    var acc = 0.0;
    if p.k0 != 0u {
        acc = y[i];
    }
    for (var r = 0u; r < p.k1; r++) {
        acc += p.s * x[r * p.cols + i];
    }
    y[i] = acc;
}
