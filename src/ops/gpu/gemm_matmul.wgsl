// Plain matmul: c (m, n) = s·op(a)·op(b) (+ c when accumulating), row-major operands from
// offsets; lda, ldb: the stored matrices' row lengths. The host prepends TRANS_A and TRANS_B.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const A_K_FAST: bool = !TRANS_A;
const B_N_FAST: bool = !TRANS_B;

fn load_a(r: u32, kk: u32) -> f32 {
    if TRANS_A {
        return a[p.a_off + kk * p.lda + r];
    }
    return a[p.a_off + r * p.lda + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    if TRANS_B {
        return b[p.b_off + col * p.ldb + kk];
    }
    return b[p.b_off + kk * p.ldb + col];
}

fn store_c(r: u32, col: u32, split: u32, acc: f32) {
    let i = p.c_off + r * p.n + col;
    var v = p.s * acc;
    if p.accumulate != 0u {
        v = c[i] + v;
    }
    c[i] = v;
}
