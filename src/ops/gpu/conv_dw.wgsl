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

// cols[(channel, ki, kj), (image, oy, ox)], transposed (conv_gather.wgsl).
fn load_b(kk: u32, col: u32) -> f32 {
    return gather_cols(col, kk);
}

fn store_c(r: u32, col: u32, split: u32, acc: f32) {
    dw[(split * p.m + r) * p.n + col] = acc;
}
