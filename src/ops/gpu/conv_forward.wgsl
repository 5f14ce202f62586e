// Convolution forward as an implicit GEMM (no im2col in memory): y (f, n·oh·ow) = w (f, c·k·k) ·
// cols (c·k·k, n·oh·ow) + b, each column of `cols` read from x (n, c, h, w) as it is needed. Leaky
// ReLU is applied on store when the host prepends ACT = true.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const A_K_FAST: bool = true;
const B_N_FAST: bool = true;

fn load_a(r: u32, kk: u32) -> f32 {
    return wt[r * p.k + kk];
}

// cols[kk, col]: tap kk = (channel, ki, kj) of output pixel col = (image, oy, ox); 0 in the padding.
fn load_b(kk: u32, col: u32) -> f32 {
    let plane = p.oh * p.ow;
    let img = col / plane;
    let pix = col % plane;
    let taps = p.kw * p.kw;
    let ch = kk / taps;
    let t = kk % taps;
    let uy = (pix / p.ow) * p.stride + t / p.kw;
    let ux = (pix % p.ow) * p.stride + t % p.kw;
    if uy < p.pad || ux < p.pad || uy - p.pad >= p.h || ux - p.pad >= p.w {
        return 0.0;
    }
    return x[((img * p.ch + ch) * p.h + uy - p.pad) * p.w + ux - p.pad];
}

fn store_c(r: u32, col: u32, split: u32, acc: f32) {
    let plane = p.oh * p.ow;
    var v = acc + bias[r];
    if ACT {
        v = max(v, 0.0) + p.slope * min(v, 0.0);
    }
    y[((col / plane) * p.f + r) * plane + col % plane] = v;
}
