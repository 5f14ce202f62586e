// Max pooling over (planes) independent h x w planes, window k, stride s, no padding (floor), as
// src/ops/cpu/pool.rs: the forward pass records each output's winner (its index in the plane,
// the first of equal maxima); the backward pass gathers, for each input, the gradients of the
// windows it won, in output order (no scatter: windows overlap when s < k).

struct Params {
    n: u32,
    h: u32,
    w: u32,
    k: u32,
    stride: u32,
    oh: u32,
    ow: u32,
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
    // Windows oy·s ≤ iy < oy·s + k.
    var oy0 = 0u;
    if iy + 1u > p.k {
        oy0 = (iy + 1u - p.k + p.stride - 1u) / p.stride;
    }
    var ox0 = 0u;
    if ix + 1u > p.k {
        ox0 = (ix + 1u - p.k + p.stride - 1u) / p.stride;
    }
    let oy1 = min(iy / p.stride + 1u, p.oh);
    let ox1 = min(ix / p.stride + 1u, p.ow);
    let out_base = plane * p.oh * p.ow;
    var acc = 0.0;
    for (var oy = oy0; oy < oy1; oy++) {
        for (var ox = ox0; ox < ox1; ox++) {
            let o = out_base + oy * p.ow + ox;
            if winner[o] == q {
                acc += x[o];
            }
        }
    }
    y[i] = acc;
}
