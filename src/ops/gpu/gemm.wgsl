// Tiled matrix product c (m, n) = a (m, k) · b (k, n), the core every product shares: plain
// matmul and the implicit-GEMM convolutions. The host prepends gemm_params.wgsl and a variant
// that declares bindings 1.. and defines
//   const A_K_FAST: bool;  const B_N_FAST: bool;   which index runs along a row of memory
//   fn load_a(r: u32, kk: u32) -> f32              a[r, kk], called with r < m, kk < k
//   fn load_b(kk: u32, col: u32) -> f32            b[kk, col], called with kk < k, col < n
//   fn store_c(r: u32, col: u32, split: u32, acc: f32)
// Each workgroup computes a BM x BM tile of c, each of its 16 x 16 threads T x T outputs of it
// (T = 4, or 2 for products too small to fill the GPU otherwise), over k in steps of 16; the host
// prepends T, BM = 16·T, LD = BM + 4 and TILE_LEN = 16·LD.
// Every output is one sum in increasing k (fma), the same on every run. With several splits
// (workgroup z), split z sums k in [z·k_split, (z+1)·k_split) and the variant stores partial sums
// that a second kernel adds in split order.

const BN: u32 = BM;
const BK: u32 = 16u;

// Tile rows padded (LD) against bank conflicts.
var<workgroup> a_tile: array<f32, TILE_LEN>; // [BK][LD]: a_tile[kq * LD + r]
var<workgroup> b_tile: array<f32, TILE_LEN>; // [BK][LD]: b_tile[kq * LD + c]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tile = wid.y * nwg.x + wid.x;
    let tiles_m = (p.m + BM - 1u) / BM;
    if tile >= tiles_m * p.tiles_n {
        return;
    }
    let row0 = (tile / p.tiles_n) * BM;
    let col0 = (tile % p.tiles_n) * BN;
    let k_begin = wid.z * p.k_split;
    let k_end = min(p.k, k_begin + p.k_split);
    var acc: array<f32, ACC_LEN>;
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        for (var e = 0u; e < T; e++) {
            let idx = li + 256u * e;
            var r: u32;
            var ka: u32;
            if A_K_FAST {
                r = idx / BK;
                ka = idx % BK;
            } else {
                r = idx % BM;
                ka = idx / BM;
            }
            var v = 0.0;
            if row0 + r < p.m && k0 + ka < k_end {
                v = load_a(row0 + r, k0 + ka);
            }
            a_tile[ka * LD + r] = v;
            var c: u32;
            var kb: u32;
            if B_N_FAST {
                c = idx % BN;
                kb = idx / BN;
            } else {
                c = idx / BK;
                kb = idx % BK;
            }
            var u = 0.0;
            if col0 + c < p.n && k0 + kb < k_end {
                u = load_b(k0 + kb, col0 + c);
            }
            b_tile[kb * LD + c] = u;
        }
        workgroupBarrier();
        for (var kq = 0u; kq < BK; kq++) {
            var av: array<f32, T>;
            var bv: array<f32, T>;
            for (var i = 0u; i < T; i++) {
                av[i] = a_tile[kq * LD + lid.y + 16u * i];
                bv[i] = b_tile[kq * LD + lid.x + 16u * i];
            }
            for (var i = 0u; i < T; i++) {
                for (var j = 0u; j < T; j++) {
                    acc[i * T + j] = fma(av[i], bv[j], acc[i * T + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < T; i++) {
        for (var j = 0u; j < T; j++) {
            let r = row0 + lid.y + 16u * i;
            let c = col0 + lid.x + 16u * j;
            if r < p.m && c < p.n {
                store_c(r, c, wid.z, acc[i * T + j]);
            }
        }
    }
}
