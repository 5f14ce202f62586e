// Convolution weight gradient as an implicit GEMM: dw (f, c·k·k) = g (f, n·oh·ow) · colsᵀ
// (n·oh·ow, c·k·k), summed over images and pixels in order within each split of that sum; with
// several splits, each stores its partial sums at split·f·c·k·k and conv_reduce.wgsl's `sum_splits`
// adds them in split order. The host prepends `dyact` (see conv_dx.wgsl).

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

const A_K_FAST: bool = true;
const B_N_FAST: bool = false;

// g[fi, (image, pixel)].
fn load_a(r: u32, kk: u32) -> f32 {
    let plane = G_OH * G_OW;
    return dyact(((kk / plane) * G_F + r) * plane + kk % plane);
}

// cols[(channel, ki, kj), (image, oy, ox)], transposed.
fn load_b(kk: u32, col: u32) -> f32 {
    let plane = G_OH * G_OW;
    let img = kk / plane;
    let pix = kk % plane;
    let taps = G_K * G_K;
    let ch = col / taps;
    let t = col % taps;
    let uy = (pix / G_OW) * G_S + t / G_K;
    let ux = (pix % G_OW) * G_S + t % G_K;
    if uy < G_P || ux < G_P || uy - G_P >= G_H || ux - G_P >= G_W {
        return 0.0;
    }
    return x[((img * G_C + ch) * G_H + uy - G_P) * G_W + ux - G_P];
}

fn store_c(r: u32, col: u32, split: u32, acc: f32) {
    dw[(split * p.m + r) * p.n + col] = acc;
}
