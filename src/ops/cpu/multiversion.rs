//! Plain loops compiled twice on x86-64, for AVX2 + FMA and for the baseline (SSE2), and run as
//! the CPU (and `SCRATCHNET_MAX_CPU_ISA`) allows: the binary targets the baseline, so without this
//! the loops the compiler vectorises would use 128-bit vectors and no AVX2-era instructions
//! (dropout's hash needs 32-bit vector multiplies, which SSE2 lacks) on every CPU. AVX-512 CPUs
//! run the AVX2 version: AVX-512 versions of these loops are slower (short rows, masked
//! tails).
//!
//! The function's body is compiled into each version; closures inside it are separate functions
//! that do not get the level's instructions, so the macro goes on the innermost loops. Each
//! version computes the same bits: Rust never fuses or reorders floating-point operations on its
//! own, so only the vector width differs.

/// Defines `fn name(args) { body }` compiled for AVX2 + FMA and for the baseline, dispatched on
/// [`super::isa::current`] (elsewhere than x86-64, one version).
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::ops::cpu::isa::{current, Isa};
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if current() >= Isa::Avx2 {
                    // SAFETY: isa::current() never exceeds what the CPU has, and every level
                    // from Avx2 up has AVX2 and FMA.
                    return unsafe { v3($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
