//! Plain loops compiled once per instruction-set level and run at the level the CPU (and
//! `SCRATCHNET_MAX_CPU_ISA`) allows: the binary targets the baseline x86-64 (SSE2), so without
//! this the loops the compiler vectorises would use 128-bit vectors and no FMA-era instructions
//! (dropout's hash needs 32-bit vector multiplies, which SSE2 lacks) on every CPU.
//!
//! The function's body is compiled into each version; closures inside it are separate functions
//! that do not get the level's instructions, so the macro goes on the innermost loops. Each
//! version computes the same bits: Rust never fuses or reorders floating-point operations on its
//! own, so only the vector width differs.

/// Defines `fn name(args) { body }` compiled for AVX-512, AVX2 + FMA and the baseline, dispatched
/// on [`super::isa::current`] (elsewhere than x86-64, one version).
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::ops::cpu::isa::{current, Isa};
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match current() {
                    // SAFETY: isa::current() never exceeds what the CPU has.
                    Isa::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above; Avx2 is detected only with FMA.
                    Isa::Avx2 => return unsafe { v3($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
