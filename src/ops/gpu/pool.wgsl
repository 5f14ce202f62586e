// Max and average pooling over (planes) independent h x w planes, window k, stride s, no padding
// (floor), as src/ops/cpu/pool.rs: the max-pool forward pass records each output's winner (its
// index in the plane, the first of equal maxima); the backward passes gather, for each input, the
// gradients of the windows it is in (won, for max pooling), in output order (no scatter: windows
// overlap when s < k). Global average pooling: the mean of each plane of h values.

struct Params {
    n: u32,
    h: u32,
    w: u32,
    k: u32,
    stride: u32,
    oh: u32,
    ow: u32,
    // Average pooling: 1/k² (1/h for global pooling).
    inv: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> winner: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> argmax: array<u32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

// One thread per output; n = planes · oh · ow. x: the input, y: the output.
@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let o = index(wid, nwg, lid);
    if o >= p.n {
        return;
    }
    let out_plane = p.oh * p.ow;
    let plane = o / out_plane;
    let pix = o % out_plane;
    let base = plane * p.h * p.w;
    let first = (pix / p.ow) * p.stride * p.w + (pix % p.ow) * p.stride;
    var best = x[base + first];
    var at = first;
    for (var ki = 0u; ki < p.k; ki++) {
        let row = first + ki * p.w;
        for (var kj = 0u; kj < p.k; kj++) {
            let v = x[base + row + kj];
            if v > best {
                best = v;
                at = row + kj;
            }
        }
    }
    y[o] = best;
    argmax[o] = at;
}

// One thread per input; n = planes · h · w. x: the output gradient, winner: the forward pass's
// argmax, y: the input gradient.
@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let in_plane = p.h * p.w;
    let plane = i / in_plane;
    let q = i % in_plane;
    let iy = q / p.w;
    let ix = q % p.w;
    let win = windows(iy, ix);
    let out_base = plane * p.oh * p.ow;
    var acc = 0.0;
    for (var oy = win.x; oy < win.z; oy++) {
        for (var ox = win.y; ox < win.w; ox++) {
            let o = out_base + oy * p.ow + ox;
            if winner[o] == q {
                acc += x[o];
            }
        }
    }
    y[i] = acc;
}

// The windows containing input (iy, ix): oy in [r.x, r.z), ox in [r.y, r.w), those with
// o·s ≤ i < o·s + k.
fn windows(iy: u32, ix: u32) -> vec4<u32> {
    var oy0 = 0u;
    if iy + 1u > p.k {
        oy0 = (iy + 1u - p.k + p.stride - 1u) / p.stride;
    }
    var ox0 = 0u;
    if ix + 1u > p.k {
        ox0 = (ix + 1u - p.k + p.stride - 1u) / p.stride;
    }
    return vec4<u32>(oy0, ox0, min(iy / p.stride + 1u, p.oh), min(ix / p.stride + 1u, p.ow));
}

// Average pooling, one thread per output; n = planes · oh · ow. Each window row summed in order,
// then the rows, times 1/k² (the CPU's order).
@compute @workgroup_size(256)
fn avg_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let o = index(wid, nwg, lid);
    if o >= p.n {
        return;
    }
    let out_plane = p.oh * p.ow;
    let pix = o % out_plane;
    let first = (o / out_plane) * p.h * p.w + (pix / p.ow) * p.stride * p.w + (pix % p.ow) * p.stride;
    var sum = 0.0;
    for (var ki = 0u; ki < p.k; ki++) {
        var row = 0.0;
        for (var kj = 0u; kj < p.k; kj++) {
            row += x[first + ki * p.w + kj];
        }
        sum += row;
    }
    y[o] = sum * p.inv;
}

// One thread per input; n = planes · h · w. x: the output gradient, y: the input gradient, the
// sum of dy/k² over the windows containing the input, in output order.
@compute @workgroup_size(256)
fn avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let in_plane = p.h * p.w;
    let q = i % in_plane;
    let win = windows(q / p.w, q % p.w);
    let out_base = (i / in_plane) * p.oh * p.ow;
    var acc = 0.0;
    for (var oy = win.x; oy < win.z; oy++) {
        for (var ox = win.y; ox < win.w; ox++) {
            acc += x[out_base + oy * p.ow + ox] * p.inv;
        }
    }
    y[i] = acc;
}

// Global average pooling, one thread per plane of h values; n = planes. Summed in order.
@compute @workgroup_size(256)
fn mean_planes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let o = index(wid, nwg, lid);
    if o >= p.n {
        return;
    }
    var sum = 0.0;
    for (var j = 0u; j < p.h; j++) {
        sum += x[o * p.h + j];
    }
    y[o] = sum * p.inv;
}

// One thread per input; n = planes · h. x: the output gradient, y = x[plane] / h everywhere.
@compute @workgroup_size(256)
fn mean_planes_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    y[i] = x[i / p.h] * p.inv;
}
