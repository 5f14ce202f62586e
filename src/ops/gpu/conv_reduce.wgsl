// The convolution's fixed-order reductions: the bias gradient (one workgroup per filter: each
// thread sums a strided share in order, then a fixed tree) and the sum of split weight gradients.
// The host prepends gemm_params.wgsl and `dyact` (see conv_dx.wgsl).

@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> sums: array<f32, 256>;

// out[fi] = Σ over images and pixels of the output gradient of filter fi.
@compute @workgroup_size(256)
fn bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let fi = wid.y * nwg.x + wid.x;
    if fi >= G_F {
        return;
    }
    let plane = G_OH * G_OW;
    let total = p.images * plane;
    var acc = 0.0;
    for (var e = li; e < total; e += 256u) {
        acc += dyact(((e / plane) * G_F + fi) * plane + e % plane);
    }
    sums[li] = acc;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if li < half {
            sums[li] += sums[li + half];
        }
        workgroupBarrier();
    }
    if li == 0u {
        out[fi] = sums[0];
    }
}

// out[i] = Σ_z part[z·m·n + i], z in order.
@compute @workgroup_size(256)
fn sum_splits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    let len = p.m * p.n;
    if i >= len {
        return;
    }
    var acc = 0.0;
    for (var z = 0u; z < p.splits; z++) {
        acc += part[z * len + i];
    }
    out[i] = acc;
}
