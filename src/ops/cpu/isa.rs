//! Which vector instructions the CPU kernels use: the best this CPU has, capped by the environment
//! variable `SCRATCHNET_MAX_CPU_ISA` (like oneDNN's `ONEDNN_MAX_CPU_ISA`): `avx512|avx2|scalar` on
//! x86-64, `neon|scalar` on AArch64, so that an AVX-512 machine can run exactly the code an AVX2
//! laptop (or a CPU without either) runs. The cap reaches our kernels (`simd::level`),
//! the plain loops compiled per level (`multiversion`) and, on x86-64, the `gemm`
//! crate's micro-kernels (`cpu::gemm`).

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Instruction-set levels, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    /// 256-bit vectors with FMA (x86-64-v3).
    Avx2,
    /// 512-bit vectors: AVX-512 F, VL, BW and DQ (every AVX-512 CPU since Skylake-SP).
    Avx512,
    /// AArch64's 128-bit vectors.
    Neon,
}

/// The environment variable that caps the level.
pub const ENV: &str = "SCRATCHNET_MAX_CPU_ISA";

impl Isa {
    pub const NAMES: [&'static str; 4] = ["scalar", "avx2", "avx512", "neon"];

    /// The levels of this architecture, in order.
    pub const HERE: &'static [Isa] = if cfg!(target_arch = "x86_64") {
        &[Isa::Scalar, Isa::Avx2, Isa::Avx512]
    } else if cfg!(target_arch = "aarch64") {
        &[Isa::Scalar, Isa::Neon]
    } else {
        &[Isa::Scalar]
    };

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// A level of this architecture by name (any case).
    pub fn from_name(s: &str) -> Option<Isa> {
        Self::HERE.iter().copied().find(|l| l.name().eq_ignore_ascii_case(s))
    }
}

/// The best level this CPU runs.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512dq") && has!("fma") {
            Isa::Avx512
        } else if has!("avx2") && has!("fma") {
            Isa::Avx2
        } else {
            Isa::Scalar
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        Isa::Neon
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Isa::Scalar
    }
}

/// The cap `SCRATCHNET_MAX_CPU_ISA` sets: None when it is unset or empty; an error naming the
/// variable for any other value than this architecture's levels.
pub fn cap_from_env() -> Result<Option<Isa>> {
    match std::env::var(ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => Isa::from_name(&v).map(Some).ok_or_else(|| {
            let here: Vec<_> = Isa::HERE.iter().map(|l| l.name()).collect();
            Error::arg("cpu", format!("{ENV}={v} is not a level of this CPU; expected one of {}", here.join(", ")))
        }),
        Err(e) => Err(Error::arg("cpu", format!("{ENV}: {e}"))),
    }
}

/// The level the kernels use: [`detected`], capped by [`cap_from_env`] (an invalid value caps
/// nothing here; the command line refuses it before any work).
pub fn current() -> Isa {
    static CURRENT: OnceLock<Isa> = OnceLock::new();
    *CURRENT.get_or_init(|| {
        let best = detected();
        cap_from_env().ok().flatten().map_or(best, |cap| cap.min(best))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_named_and_ordered() {
        for &isa in Isa::HERE {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert!(Isa::HERE.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Isa::from_name("sse4"), None);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2));
            assert_eq!(Isa::from_name("neon"), None);
        }
        assert!(current() <= detected());
    }
}
