//! Half-precision numbers (IEEE binary16 `F16` and bfloat16 `BF16`) to and from `f32`, for model
//! files that store their weights in 16 bits. Widening is exact; narrowing rounds to the nearest
//! value, ties to even, as PyTorch's `tensor.half()` / `tensor.bfloat16()` do.

use safetensors::Dtype;

/// IEEE half precision to single (exact: every f16 is an f32).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Single precision to IEEE half, rounded to nearest, ties to even. Beyond the largest half
/// (65504, or rather from 65520 on, which rounds up) gives infinity; below half the smallest
/// subnormal (2^-25) gives zero.
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        // Infinity, or NaN kept quiet with its top mantissa bits.
        return sign | 0x7c00 | if man != 0 { 0x200 | (man >> 13) as u16 } else { 0 };
    }
    // The exponent with half precision's bias.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    // Keep `m >> shift`, round by the bits shifted out; a carry out of the mantissa steps the
    // exponent up (to infinity from the largest half), which is the right result.
    let round = |m: u32, shift: u32| {
        let (kept, rest, half) = (m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1));
        kept + u32::from(rest > half || (rest == half && kept & 1 == 1))
    };
    if e <= 0 {
        // A subnormal half (or zero): the value in units of 2^-24.
        if e < -10 {
            return sign;
        }
        return sign | round(man | 0x80_0000, (14 - e) as u32) as u16;
    }
    sign | round(((e as u32) << 23) | man, 13) as u16
}

/// bfloat16 to single (exact: the top 16 bits of an f32).
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Single precision to bfloat16, rounded to nearest, ties to even (NaN stays NaN).
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) as u16 | 0x40;
    }
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// Little-endian values of a floating-point `dtype` (F32, F64, F16, BF16) as f32; None for other
/// types.
pub(crate) fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let u16s = |f: fn(u16) -> f32| data.chunks_exact(2).map(|b| f(u16::from_le_bytes([b[0], b[1]]))).collect();
    Some(match dtype {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
        Dtype::BF16 => u16s(bf16_to_f32),
        Dtype::F16 => u16s(f16_to_f32),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_widens_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc0a0), -5.0);
    }

    #[test]
    fn f16_rounds_known_values_to_nearest_even() {
        let cases: [(f32, u16); 16] = [
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (0.1, 0x2e66),
            (1.0 / 3.0, 0x3555),
            (65504.0, 0x7bff),
            (65519.0, 0x7bff),
            (65520.0, 0x7c00), // halfway to 65536: ties to even, which is infinity
            (1e6, 0x7c00),
            (1.0 + 2f32.powi(-11), 0x3c00), // halfway between 1 and the next half: even is 1
            (1.0 + 3.0 * 2f32.powi(-11), 0x3c02), // halfway between ...01 and ...02: even is 02
            (2f32.powi(-24), 0x0001),
            (2f32.powi(-25), 0x0000), // halfway between 0 and the smallest subnormal
            (1.5 * 2f32.powi(-24), 0x0002),
            (2f32.powi(-14) * (1.0 - 2f32.powi(-12)), 0x0400), // rounds up into the normals
        ];
        for (x, h) in cases {
            assert_eq!(f32_to_f16(x), h, "{x:e}");
        }
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        assert_eq!(f32_to_f16(1e-30), 0);
    }

    /// Every finite half survives the round trip, and the f32 values around each midpoint
    /// between neighbours round to the nearer one (the midpoint itself to the even one).
    #[test]
    fn f16_rounding_is_exact_on_every_value_and_midpoint() {
        for h in 0..0x7c00u16 {
            for s in [0, 0x8000] {
                assert_eq!(f32_to_f16(f16_to_f32(h | s)), h | s, "{:#06x}", h | s);
            }
            let (lo, hi) = (f16_to_f32(h) as f64, if h == 0x7bff { 65536.0 } else { f16_to_f32(h + 1) as f64 });
            let mid = ((lo + hi) / 2.0) as f32;
            assert_eq!(mid as f64, (lo + hi) / 2.0, "midpoints fit in an f32");
            let even = if h & 1 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_f16(mid), even, "midpoint above {h:#06x}");
            assert_eq!(f32_to_f16(f32::from_bits(mid.to_bits() - 1)), h, "below the midpoint above {h:#06x}");
            assert_eq!(f32_to_f16(f32::from_bits(mid.to_bits() + 1)), h + 1, "above the midpoint above {h:#06x}");
            assert_eq!(f32_to_f16(-mid), even | 0x8000);
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie: even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82); // tie: even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80); // rounds up to infinity
        assert_eq!(f32_to_bf16(-3.0), 0xc040);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
        for h in (0..0x7f80u16).step_by(7) {
            assert_eq!(f32_to_bf16(bf16_to_f32(h)), h);
        }
    }

    #[test]
    fn decodes_little_endian_floats() {
        let halves: Vec<u8> = [0x3c00u16, 0xc000].iter().flat_map(|h| h.to_le_bytes()).collect();
        assert_eq!(to_f32(Dtype::F16, &halves).unwrap(), [1.0, -2.0]);
        assert_eq!(to_f32(Dtype::BF16, &0x3f80u16.to_le_bytes()).unwrap(), [1.0]);
        assert_eq!(to_f32(Dtype::F64, &2.5f64.to_le_bytes()).unwrap(), [2.5]);
        assert_eq!(to_f32(Dtype::I32, &[0; 4]), None);
    }
}
