//! The field GF(2⁸) of SPEC.md F.3: bytes, added by XOR and multiplied as polynomials
//! over GF(2) modulo [`POLYNOMIAL`].
//!
//! Multiplication goes through logarithms to the base 2 (a generator of the field's
//! 255 non-zero elements): `a · b = 2^(log a + log b)`. The two tables are 768 bytes,
//! computed at compile time.

/// x⁸ + x⁴ + x³ + x² + 1, the field's reduction polynomial (SPEC.md F.3).
pub const POLYNOMIAL: u16 = 0x11D;

/// `EXP[i] = 2^i`. Twice the period of 255, so that `EXP[log a + log b]` needs no
/// reduction modulo 255.
static EXP: [u8; 512] = exp_table();

/// `LOG[a]` = the `i` in `0..255` with `2^i = a`; `LOG[0]` is unused (0 has none).
static LOG: [u8; 256] = log_table();

const fn exp_table() -> [u8; 512] {
    let mut table = [0; 512];
    let mut power: u16 = 1;
    let mut i = 0;
    while i < table.len() {
        table[i] = power as u8;
        power <<= 1;
        if power & 0x100 != 0 {
            power ^= POLYNOMIAL;
        }
        i += 1;
    }
    table
}

const fn log_table() -> [u8; 256] {
    let exp = exp_table();
    let mut table = [0; 256];
    let mut i = 0;
    while i < 255 {
        table[exp[i] as usize] = i as u8;
        i += 1;
    }
    table
}

/// `a · b`.
pub fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    EXP[usize::from(LOG[usize::from(a)]) + usize::from(LOG[usize::from(b)])]
}

/// `a⁻¹`, the `b` with `a · b = 1`. Panics on 0, which has none.
pub fn inv(a: u8) -> u8 {
    assert_ne!(a, 0, "0 has no inverse in GF(2⁸)");
    EXP[255 - usize::from(LOG[usize::from(a)])]
}

/// `a^n`, with `0^0 = 1` (the Vandermonde matrix's first row is `0^c`).
pub fn pow(a: u8, n: usize) -> u8 {
    if n == 0 {
        1
    } else if a == 0 {
        0
    } else {
        EXP[usize::from(LOG[usize::from(a)]) * n % 255]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `a · b` the long way — shift and add, reducing as it goes — so the tables are
    /// checked against the definition and not against themselves.
    fn mul_by_definition(mut a: u8, mut b: u8) -> u8 {
        let mut product = 0;
        while b != 0 {
            if b & 1 != 0 {
                product ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= 0x1D; // 0x11D without its x⁸, written out so a wrong POLYNOMIAL shows
            }
            b >>= 1;
        }
        product
    }

    #[test]
    fn tables_are_the_powers_of_two() {
        assert_eq!(EXP[0], 1);
        assert_eq!(EXP[8], 0x1D);
        for i in 0..255 {
            assert_eq!(usize::from(LOG[usize::from(EXP[i])]), i);
            assert_eq!(EXP[i + 255], EXP[i]);
            assert_eq!(EXP[i + 1], mul_by_definition(EXP[i], 2));
        }
        for a in 1..=255u8 {
            assert_eq!(EXP[usize::from(LOG[usize::from(a)])], a);
        }
    }

    #[test]
    fn mul_is_the_definition() {
        for a in 0..=255 {
            for b in 0..=255 {
                assert_eq!(mul(a, b), mul_by_definition(a, b), "{a} · {b}");
            }
        }
    }

    #[test]
    fn every_non_zero_element_has_an_inverse() {
        for a in 1..=255 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
        }
    }

    #[test]
    fn powers() {
        assert_eq!(pow(0, 0), 1);
        assert_eq!(pow(0, 3), 0);
        for a in 0..=255u8 {
            let mut expect = 1;
            for n in 0..20 {
                assert_eq!(pow(a, n), expect, "{a}^{n}");
                expect = mul(expect, a);
            }
        }
    }

    proptest! {
        #[test]
        fn field_laws(a: u8, b: u8, c: u8) {
            prop_assert_eq!(mul(a, b ^ c), mul(a, b) ^ mul(a, c));
            prop_assert_eq!(mul(a, b), mul(b, a));
            prop_assert_eq!(mul(a, mul(b, c)), mul(mul(a, b), c));
            prop_assert_eq!(mul(a, 1), a);
        }
    }
}
