//! Which vector instructions the CPU kernels use: the best this CPU has, capped by the environment
//! variable `SCRATCHNET_MAX_CPU_ISA=avx512|avx2|scalar` (like oneDNN's `ONEDNN_MAX_CPU_ISA`), so
//! that an AVX-512 machine can run exactly the products and convolution paths an AVX2 laptop
//! runs. The cap reaches our AVX-512 kernels ([`super::conv_direct::available`]) and the `gemm`
//! crate's micro-kernels ([`super::gemm`]); loops the compiler vectorises follow the build's
//! target CPU.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Instruction-set levels, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    /// 256-bit vectors with FMA (x86-64-v3).
    Avx2,
    /// 512-bit vectors (AVX-512F).
    Avx512,
}

/// The environment variable that caps the level.
pub const ENV: &str = "SCRATCHNET_MAX_CPU_ISA";

impl Isa {
    pub const NAMES: [&'static str; 3] = ["scalar", "avx2", "avx512"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn from_name(s: &str) -> Option<Isa> {
        match s.to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }
}

/// The best level this CPU runs.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// The cap `SCRATCHNET_MAX_CPU_ISA` sets: None when it is unset or empty; an error naming the
/// variable for any other value than the three levels.
pub fn cap_from_env() -> Result<Option<Isa>> {
    match std::env::var(ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => Isa::from_name(&v).map(Some).ok_or_else(|| {
            Error::arg("cpu", format!("{ENV}={v} is not a level; expected one of {}", Isa::NAMES.join(", ")))
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
        for (i, name) in Isa::NAMES.iter().enumerate() {
            let isa = Isa::from_name(name).unwrap();
            assert_eq!((isa as usize, isa.name()), (i, *name));
        }
        assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse4"), None);
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
        assert!(current() <= detected());
    }
}
