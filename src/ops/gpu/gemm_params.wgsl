// The parameter block of the products and convolutions (binding 0), as gemm.rs writes it.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    lda: u32,
    ldb: u32,
    accumulate: u32,
    s: f32,
    slope: f32,
    // Convolution geometry.
    ch: u32,
    h: u32,
    w: u32,
    f: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    // Splits of k (workgroup z) and the k range of each.
    splits: u32,
    k_split: u32,
    images: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
