//! A small portable SIMD layer: the vector operations our kernels need, once per instruction set
//! (AVX-512, AVX2 + FMA, NEON), so that each kernel is written once, generic over [`Simd`], and
//! compiled per level inside a `#[target_feature]` entry point picked at run time ([`level`]).
//!
//! A level's type is a token: it can only be made where the CPU runs that instruction set (and
//! `SCRATCHNET_MAX_CPU_ISA` allows it), so its arithmetic is safe to call; only loads and stores,
//! which take raw pointers, are `unsafe`. Kernels written against the trait must be
//! `#[inline(always)]` down to the intrinsics, and use loops over arrays rather than closures, so
//! that everything is compiled inside the entry point with its instruction set.
//!
//! Everything a kernel computes is exactly specified (fused multiply-add, max, min, add, mul), so
//! each level gives the same bits as long as the kernel does the same operations in the same
//! order; the vector width only changes which lanes are computed together.

// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

use super::isa::{self, Isa};

/// One instruction set's vectors of f32.
pub trait Simd: Copy {
    /// Floats per vector.
    const LANES: usize;
    type V: Copy;
    /// Which lanes a partial load or store touches: the first n.
    type Mask: Copy;

    /// The first min(n, LANES) lanes.
    fn mask(self, n: usize) -> Self::Mask;
    fn zero(self) -> Self::V;
    fn splat(self, x: f32) -> Self::V;
    /// a·b + c, rounded once.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// The even and the odd lanes of the 2·LANES floats a, b (a first).
    fn deinterleave(self, a: Self::V, b: Self::V) -> (Self::V, Self::V);
    /// The inverse of [`Simd::deinterleave`]: `even[0], odd[0], even[1], ...` as two vectors.
    fn interleave(self, even: Self::V, odd: Self::V) -> (Self::V, Self::V);
    /// The two halves of v swapped: lanes LANES/2.. first.
    fn swap_halves(self, v: Self::V) -> Self::V;

    /// # Safety
    /// p[0..LANES] is readable.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// The masked lanes of p, zero in the others, which are not read.
    ///
    /// # Safety
    /// `p[i]` is readable for the masked lanes i.
    unsafe fn load_masked(self, p: *const f32, m: Self::Mask) -> Self::V;
    /// # Safety
    /// p[0..LANES] is writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// Writes the masked lanes only.
    ///
    /// # Safety
    /// `p[i]` is writable for the masked lanes i.
    unsafe fn store_masked(self, p: *mut f32, m: Self::Mask, v: Self::V);
}

/// The vector level the kernels run at: the best the CPU has, capped by `SCRATCHNET_MAX_CPU_ISA`
/// ([`isa::current`]). `None` at the scalar level: callers take their plain-loop paths.
#[derive(Clone, Copy, Debug)]
pub enum Level {
    #[cfg(target_arch = "x86_64")]
    Avx512(x86::Avx512),
    #[cfg(target_arch = "x86_64")]
    Avx2(x86::Avx2),
    #[cfg(target_arch = "aarch64")]
    Neon(arm::Neon),
}

pub fn level() -> Option<Level> {
    match isa::current() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: isa::current() never exceeds what the CPU has (isa::detected()).
        Isa::Avx512 => Some(Level::Avx512(unsafe { x86::Avx512::new_unchecked() })),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; Avx2 is only detected with FMA.
        Isa::Avx2 => Some(Level::Avx2(unsafe { x86::Avx2::new_unchecked() })),
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above.
        Isa::Neon => Some(Level::Neon(unsafe { arm::Neon::new_unchecked() })),
        _ => None,
    }
}

/// Defines `unsafe fn name(level: Level, args) -> ret` that runs the generic kernel `path(s,
/// args)` compiled with `level`'s instruction set: one `#[target_feature]` entry point per level,
/// each the generic code monomorphised for that level's token, and the `match` between them. The
/// one table of levels every vector kernel dispatches through.
///
/// The caller's safety contract is the generic kernel's (less "`s`'s instruction set is compiled
/// in", which the entry points provide).
macro_rules! per_level {
    ($(#[$m:meta])* $vis:vis unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $generic:path;) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $name(level: $crate::ops::cpu::simd::Level, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512(s: $crate::ops::cpu::simd::x86::Avx512, $($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the caller's promises; AVX-512F is compiled in.
                unsafe { $generic(s, $($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2(s: $crate::ops::cpu::simd::x86::Avx2, $($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the caller's promises; AVX2 and FMA are compiled in.
                unsafe { $generic(s, $($arg),*) }
            }
            #[cfg(target_arch = "aarch64")]
            #[target_feature(enable = "neon")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn neon(s: $crate::ops::cpu::simd::arm::Neon, $($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the caller's promises; NEON is compiled in.
                unsafe { $generic(s, $($arg),*) }
            }
            // SAFETY: a level's token exists only where the CPU runs its instruction set; the
            // rest is the caller's promise.
            unsafe {
                match level {
                    #[cfg(target_arch = "x86_64")]
                    $crate::ops::cpu::simd::Level::Avx512(s) => avx512(s, $($arg),*),
                    #[cfg(target_arch = "x86_64")]
                    $crate::ops::cpu::simd::Level::Avx2(s) => avx2(s, $($arg),*),
                    #[cfg(target_arch = "aarch64")]
                    $crate::ops::cpu::simd::Level::Neon(s) => neon(s, $($arg),*),
                }
            }
        }
    };
}

pub(crate) use per_level;

/// Every vector level this CPU runs, whatever the cap: for tests that compare the levels.
#[cfg(test)]
pub fn levels_here() -> Vec<Level> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        let best = isa::detected();
        if best >= Isa::Avx512 {
            // SAFETY: the CPU has AVX-512F.
            out.push(Level::Avx512(unsafe { x86::Avx512::new_unchecked() }));
        }
        if best >= Isa::Avx2 {
            // SAFETY: the CPU has AVX2 and FMA (detected only with both, and AVX-512 machines
            // without them do not exist).
            out.push(Level::Avx2(unsafe { x86::Avx2::new_unchecked() }));
        }
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: NEON is part of AArch64.
    out.push(Level::Neon(unsafe { arm::Neon::new_unchecked() }));
    out
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// AVX-512F: 16 lanes, mask registers.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx512(());

    impl Avx512 {
        /// # Safety
        /// The CPU has AVX-512F.
        pub unsafe fn new_unchecked() -> Self {
            Avx512(())
        }
    }

    // SAFETY (every block in this impl): the token exists only where the CPU has AVX-512F
    // (`new_unchecked`'s contract); memory accesses are the callers' promises.
    #[allow(clippy::undocumented_unsafe_blocks)]
    impl Simd for Avx512 {
        const LANES: usize = 16;
        type V = __m512;
        type Mask = __mmask16;

        #[inline(always)]
        fn mask(self, n: usize) -> __mmask16 {
            ((1u32 << n.min(16)) - 1) as __mmask16
        }
        #[inline(always)]
        fn zero(self) -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        fn max(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_min_ps(a, b) }
        }
        #[inline(always)]
        fn deinterleave(self, a: __m512, b: __m512) -> (__m512, __m512) {
            unsafe {
                let ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
                (_mm512_permutex2var_ps(a, ev, b), _mm512_permutex2var_ps(a, od, b))
            }
        }
        #[inline(always)]
        fn interleave(self, even: __m512, odd: __m512) -> (__m512, __m512) {
            unsafe {
                let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
                let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
                (_mm512_permutex2var_ps(even, lo, odd), _mm512_permutex2var_ps(even, hi, odd))
            }
        }
        #[inline(always)]
        fn swap_halves(self, v: __m512) -> __m512 {
            unsafe { _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v) }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn load_masked(self, p: *const f32, m: __mmask16) -> __m512 {
            unsafe { _mm512_maskz_loadu_ps(m, p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn store_masked(self, p: *mut f32, m: __mmask16, v: __m512) {
            unsafe { _mm512_mask_storeu_ps(p, m, v) }
        }
    }

    /// AVX2 with FMA (x86-64-v3): 8 lanes; partial loads through vmaskmov, which neither reads nor
    /// faults on the lanes it leaves out, partial stores in pieces.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx2(());

    impl Avx2 {
        /// # Safety
        /// The CPU has AVX2 and FMA.
        pub unsafe fn new_unchecked() -> Self {
            Avx2(())
        }
    }

    // SAFETY (every block in this impl): the token exists only where the CPU has AVX2 and FMA
    // (`new_unchecked`'s contract); memory accesses are the callers' promises.
    #[allow(clippy::undocumented_unsafe_blocks)]
    impl Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        type Mask = __m256i;

        #[inline(always)]
        fn mask(self, n: usize) -> __m256i {
            // Lane i is on (all ones) when i < n.
            unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
        }
        #[inline(always)]
        fn zero(self) -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn max(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_min_ps(a, b) }
        }
        #[inline(always)]
        fn deinterleave(self, a: __m256, b: __m256) -> (__m256, __m256) {
            unsafe {
                // Within 128-bit halves: a0 a2 b0 b2 | a4 a6 b4 b6; then the 64-bit pairs in order.
                let ev = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
                let od = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
                (
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(ev))),
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(od))),
                )
            }
        }
        #[inline(always)]
        fn interleave(self, even: __m256, odd: __m256) -> (__m256, __m256) {
            unsafe {
                // e0 o0 e1 o1 | e4 o4 e5 o5 and e2 o2 e3 o3 | e6 o6 e7 o7; then the halves in order.
                let (l, h) = (_mm256_unpacklo_ps(even, odd), _mm256_unpackhi_ps(even, odd));
                (_mm256_permute2f128_ps::<0x20>(l, h), _mm256_permute2f128_ps::<0x31>(l, h))
            }
        }
        #[inline(always)]
        fn swap_halves(self, v: __m256) -> __m256 {
            unsafe { _mm256_permute2f128_ps::<1>(v, v) }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn load_masked(self, p: *const f32, m: __m256i) -> __m256 {
            unsafe { _mm256_maskload_ps(p, m) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn store_masked(self, p: *mut f32, m: __m256i, v: __m256) {
            // vmaskmovps to memory is an order of magnitude slower than a store on AMD's Zen cores
            // (BENCHMARKS.md). A mask from `mask` is a prefix: written in pieces of 8, 4, 2 and 1.
            unsafe {
                let mut n = _mm256_movemask_ps(_mm256_castsi256_ps(m)).count_ones();
                if n == 8 {
                    return _mm256_storeu_ps(p, v);
                }
                let (mut p, mut x) = (p, _mm256_castps256_ps128(v));
                if n >= 4 {
                    _mm_storeu_ps(p, x);
                    (p, x, n) = (p.add(4), _mm256_extractf128_ps(v, 1), n - 4);
                }
                if n >= 2 {
                    _mm_store_sd(p as *mut f64, _mm_castps_pd(x));
                    (p, x, n) = (p.add(2), _mm_movehl_ps(x, x), n - 2);
                }
                if n == 1 {
                    _mm_store_ss(p, x);
                }
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub mod arm {
    use super::Simd;
    use std::arch::aarch64::*;

    /// NEON (every AArch64 CPU): 4 lanes; no masked accesses, so partial ones go lane by lane.
    #[derive(Clone, Copy, Debug)]
    pub struct Neon(());

    impl Neon {
        /// # Safety
        /// The CPU has NEON (all AArch64 CPUs do).
        pub unsafe fn new_unchecked() -> Self {
            Neon(())
        }
    }

    // SAFETY (every block in this impl): NEON is part of AArch64; memory accesses are the
    // callers' promises.
    #[allow(clippy::undocumented_unsafe_blocks)]
    impl Simd for Neon {
        const LANES: usize = 4;
        type V = float32x4_t;
        type Mask = usize;

        #[inline(always)]
        fn mask(self, n: usize) -> usize {
            n.min(4)
        }
        #[inline(always)]
        fn zero(self) -> float32x4_t {
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> float32x4_t {
            unsafe { vdupq_n_f32(x) }
        }
        #[inline(always)]
        fn fma(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vaddq_f32(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vsubq_f32(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vmulq_f32(a, b) }
        }
        #[inline(always)]
        fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // IEEE maxNum-like on NaN differs from x86's; kernels only compare finite values.
            unsafe { vmaxq_f32(a, b) }
        }
        #[inline(always)]
        fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vminq_f32(a, b) }
        }
        #[inline(always)]
        fn deinterleave(self, a: float32x4_t, b: float32x4_t) -> (float32x4_t, float32x4_t) {
            unsafe { (vuzp1q_f32(a, b), vuzp2q_f32(a, b)) }
        }
        #[inline(always)]
        fn interleave(self, even: float32x4_t, odd: float32x4_t) -> (float32x4_t, float32x4_t) {
            unsafe { (vzip1q_f32(even, odd), vzip2q_f32(even, odd)) }
        }
        #[inline(always)]
        fn swap_halves(self, v: float32x4_t) -> float32x4_t {
            unsafe { vextq_f32::<2>(v, v) }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> float32x4_t {
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn load_masked(self, p: *const f32, m: usize) -> float32x4_t {
            let mut buf = [0.0f32; 4];
            for (i, b) in buf.iter_mut().enumerate().take(m) {
                *b = unsafe { *p.add(i) };
            }
            unsafe { vld1q_f32(buf.as_ptr()) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: float32x4_t) {
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn store_masked(self, p: *mut f32, m: usize, v: float32x4_t) {
            let mut buf = [0.0f32; 4];
            unsafe { vst1q_f32(buf.as_mut_ptr(), v) };
            for (i, b) in buf.iter().enumerate().take(m) {
                unsafe { *p.add(i) = *b };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    per_level! {
        /// Loads `n` values from `src` and stores them to `dst`, both masked to `n` lanes.
        unsafe fn copy_masked(src: *const f32, dst: *mut f32, n: usize) = copy_masked_at;
    }

    #[inline(always)]
    unsafe fn copy_masked_at<S: Simd>(s: S, src: *const f32, dst: *mut f32, n: usize) {
        // SAFETY: the caller's lanes.
        unsafe { s.store_masked(dst, s.mask(n), s.load_masked(src, s.mask(n))) }
    }

    /// Masked accesses touch exactly their lanes, at every count, at the end of a buffer.
    #[test]
    fn masked_loads_and_stores_touch_only_their_lanes() {
        for level in levels_here() {
            let lanes = match level {
                #[cfg(target_arch = "x86_64")]
                Level::Avx512(_) => 16,
                #[cfg(target_arch = "x86_64")]
                Level::Avx2(_) => 8,
                #[cfg(target_arch = "aarch64")]
                Level::Neon(_) => 4,
            };
            for n in 0..=lanes {
                let src: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
                let mut dst = vec![-1.0f32; lanes + 2];
                // SAFETY: src holds n floats (its last at the end of its allocation), dst n + 2.
                unsafe { copy_masked(level, src.as_ptr(), dst.as_mut_ptr().add(1), n) };
                let want: Vec<f32> =
                    (0..lanes + 2).map(|i| if (1..=n).contains(&i) { i as f32 } else { -1.0 }).collect();
                assert_eq!(dst, want, "{level:?}, {n} lanes");
            }
        }
    }
}
