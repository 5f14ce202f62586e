// Softmax, the fused softmax + cross-entropy loss, and row argmax, with the CPU's formulas
// (src/ops/cpu/softmax.rs): ŷ = exp(z - lse), lse = max + ln Σ exp(z - max), summed in order.

struct Params {
    rows: u32,
    k: u32,
    // Smoothed targets: `on` for the label, `off` elsewhere.
    on: f32,
    off: f32,
    // Where the loss and the correct count go in their buffers.
    at: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> correct: array<u32>;
@group(0) @binding(7) var<storage, read_write> best: array<u32>;

fn log_sum_exp(base: u32) -> f32 {
    var mx = x[base];
    for (var j = 1u; j < p.k; j++) {
        mx = max(mx, x[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < p.k; j++) {
        sum += exp(x[base + j] - mx);
    }
    return mx + log(sum);
}

// The first index of the row's maximum of probs.
fn argmax_probs(base: u32) -> u32 {
    var at = 0u;
    for (var j = 1u; j < p.k; j++) {
        if probs[base + j] > probs[base + at] {
            at = j;
        }
    }
    return at;
}

@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = (wid.y * nwg.x + wid.x) * 256u + lid;
    if row >= p.rows {
        return;
    }
    let base = row * p.k;
    let lse = log_sum_exp(base);
    for (var j = 0u; j < p.k; j++) {
        probs[base + j] = exp(x[base + j] - lse);
    }
}

// best[row] = the first index of the row's maximum of x.
@compute @workgroup_size(256)
fn argmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row = (wid.y * nwg.x + wid.x) * 256u + lid;
    if row >= p.rows {
        return;
    }
    let base = row * p.k;
    var at = 0u;
    for (var j = 1u; j < p.k; j++) {
        if x[base + j] > x[base + at] {
            at = j;
        }
    }
    best[row] = at;
}

var<workgroup> part_loss: array<f32, 256>;
var<workgroup> part_correct: array<u32, 256>;

// One workgroup: thread t takes rows t, t + 256, ... in order, then a fixed tree adds the threads'
// sums. Writes probs, dlogits = (ŷ - target) / rows, loss[at] = the mean loss and correct[at] =
// how many rows' first maximum of ŷ is their label.
@compute @workgroup_size(256)
fn cross_entropy(@builtin(local_invocation_index) t: u32) {
    var row_loss = 0.0;
    var hits = 0u;
    let n = f32(p.rows);
    for (var row = t; row < p.rows; row += 256u) {
        let base = row * p.k;
        let lse = log_sum_exp(base);
        let y = labels[row];
        for (var j = 0u; j < p.k; j++) {
            let tgt = select(p.off, p.on, j == y);
            let log_p = x[base + j] - lse;
            let pj = exp(log_p);
            probs[base + j] = pj;
            if tgt > 0.0 {
                row_loss -= tgt * log_p;
            }
            dlogits[base + j] = (pj - tgt) / n;
        }
        hits += select(0u, 1u, argmax_probs(base) == y);
    }
    part_loss[t] = row_loss;
    part_correct[t] = hits;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if t < half {
            part_loss[t] += part_loss[t + half];
            part_correct[t] += part_correct[t + half];
        }
        workgroupBarrier();
    }
    if t == 0u {
        loss[p.at] = part_loss[0] / n;
        correct[p.at] = part_correct[0];
    }
}
