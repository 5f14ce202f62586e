// Convolution input gradient as an implicit GEMM, gathered (no scatter, no atomics):
// dx (c, n·h·w) = wᵀ (c, f·k·k) · g (f·k·k, n·h·w), where g[(fi, ki, kj), (image, iy, ix)] is the
// output gradient at the output pixel whose tap (ki, kj) reads (iy, ix), or 0 when no pixel does.
// The host prepends `dyact`, the output gradient (before a fused activation) at an index of dy.

@group(0) @binding(1) var<storage, read> wt: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const A_K_FAST: bool = true;
const B_N_FAST: bool = true;

// w[fi, r, ki, kj] with kk = (fi, ki, kj).
fn load_a(r: u32, kk: u32) -> f32 {
    let taps = G_K * G_K;
    return wt[((kk / taps) * G_C + r) * taps + kk % taps];
}

fn load_b(kk: u32, col: u32) -> f32 {
    let plane = G_H * G_W;
    let img = col / plane;
    let q = col % plane;
    let taps = G_K * G_K;
    let fi = kk / taps;
    let t = kk % taps;
    // Output row oy reads input row iy through kernel row ki when oy·stride + ki = iy + pad.
    let ty = q / G_W + G_P;
    let tx = q % G_W + G_P;
    let ki = t / G_K;
    let kj = t % G_K;
    if ty < ki || tx < kj || (ty - ki) % G_S != 0u || (tx - kj) % G_S != 0u {
        return 0.0;
    }
    let oy = (ty - ki) / G_S;
    let ox = (tx - kj) / G_S;
    if oy >= G_OH || ox >= G_OW {
        return 0.0;
    }
    return dyact(((img * G_F + fi) * G_OH + oy) * G_OW + ox);
}

fn store_c(r: u32, col: u32, split: u32, acc: f32) {
    let plane = G_H * G_W;
    dx[((col / plane) * G_C + r) * plane + col % plane] = acc;
}
