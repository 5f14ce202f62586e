// Convolution forward as an implicit GEMM (no im2col in memory): y (f, n·oh·ow) = w (f, c·k·k) ·
// cols (c·k·k, n·oh·ow) + b, each column of `cols` read from x (n, c, h, w) as it is needed. Leaky
// ReLU is applied on store when the host prepends ACT = true.
// All the convolution shaders get the geometry as constants (conv.rs `geometry_src`): G_C, G_H,
// G_W the input's channels and size, G_F filters of G_K x G_K, stride G_S, padding G_P, output
// G_OH x G_OW; divisions by them compile to multiplications.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const A_K_FAST: bool = true;
const B_N_FAST: bool = true;

fn load_a(r: u32, kk: u32) -> f32 {
    return wt[r * p.k + kk];
}

// cols[kk, col] (conv_gather.wgsl).
fn load_b(kk: u32, col: u32) -> f32 {
    return gather_cols(kk, col);
}

fn store_c(r: u32, col: u32, split: u32, acc: f32) {
    let plane = G_OH * G_OW;
    var v = acc + bias[r];
    if ACT {
        v = max(v, 0.0) + p.slope * min(v, 0.0);
    }
    y[((col / plane) * G_F + r) * plane + col % plane] = v;
}
