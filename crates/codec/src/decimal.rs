//! Decimal text (`-12.340`, `1.5e2`) to a scaled `i128`, exactly.
//!
//! Nothing is rounded: a value with more fractional digits than the column's
//! scale (other than trailing zeros), or more digits than its precision, is
//! out of range rather than silently changed.

use crate::rejection::Reason;

const MAX_DIGITS: usize = 38;

/// Parses decimal text into an integer scaled by `10^scale`.
pub(crate) fn parse_decimal(text: &[u8], precision: u8, scale: u8) -> Result<i128, Reason> {
    const BAD: Reason = Reason::Malformed("not a decimal number");
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let (mantissa_text, exponent) = match body.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => {
            let exponent = std::str::from_utf8(&body[i + 1..]).ok().and_then(|e| e.parse::<i32>().ok()).ok_or(BAD)?;
            (&body[..i], exponent)
        }
        None => (body, 0),
    };
    let mut digits: i128 = 0;
    let mut significant = 0usize;
    let mut fraction_digits: i32 = 0;
    let mut seen_point = false;
    let mut seen_digit = false;
    for &b in mantissa_text {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                if seen_point {
                    fraction_digits += 1;
                }
                if significant > 0 || b != b'0' {
                    significant += 1;
                    if significant > MAX_DIGITS {
                        return Err(Reason::OutOfRange("decimal has more than 38 digits"));
                    }
                }
                digits = digits * 10 + i128::from(b - b'0');
            }
            b'.' if !seen_point => seen_point = true,
            _ => return Err(BAD),
        }
    }
    if !seen_digit {
        return Err(BAD);
    }
    // value = digits * 10^(exponent - fraction_digits); we want value * 10^scale.
    let shift = i64::from(exponent) - i64::from(fraction_digits) + i64::from(scale);
    let scaled = if shift >= 0 {
        let factor = u32::try_from(shift).ok().and_then(|s| 10i128.checked_pow(s));
        factor.and_then(|f| digits.checked_mul(f)).ok_or(Reason::OutOfRange("decimal exceeds its precision"))?
    } else {
        let divisor = u32::try_from(-shift).ok().and_then(|s| 10i128.checked_pow(s));
        match divisor {
            Some(d) if digits % d == 0 => digits / d,
            // A divisor beyond i128 leaves only zero representable.
            None if digits == 0 => 0,
            _ => return Err(Reason::OutOfRange("decimal has more fractional digits than its scale")),
        }
    };
    let limit = 10i128.pow(u32::from(precision.min(38)));
    if scaled >= limit {
        return Err(Reason::OutOfRange("decimal exceeds its precision"));
    }
    Ok(if negative { -scaled } else { scaled })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_values() {
        assert_eq!(parse_decimal(b"12.34", 10, 2), Ok(1234));
        assert_eq!(parse_decimal(b"-12.3", 10, 2), Ok(-1230));
        assert_eq!(parse_decimal(b"12.340", 10, 2), Ok(1234));
        assert_eq!(parse_decimal(b"7", 5, 0), Ok(7));
        assert_eq!(parse_decimal(b"1.5e2", 10, 2), Ok(15000));
        assert_eq!(parse_decimal(b"150e-2", 10, 2), Ok(150));
        assert_eq!(parse_decimal(b"0.00", 1, 0), Ok(0));
        assert_eq!(parse_decimal(b"99999999999999999999999999999999999999", 38, 0), Ok(10i128.pow(38) - 1));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_decimal(b"12.345", 10, 2).map_err(|r| r.code()), Err(crate::ReasonCode::OutOfRange));
        assert_eq!(parse_decimal(b"1000", 3, 0).map_err(|r| r.code()), Err(crate::ReasonCode::OutOfRange));
        assert_eq!(parse_decimal(b"10.0", 3, 2).map_err(|r| r.code()), Err(crate::ReasonCode::OutOfRange));
        assert_eq!(parse_decimal(b"1e40", 38, 0).map_err(|r| r.code()), Err(crate::ReasonCode::OutOfRange));
        for bad in [&b""[..], b"-", b"1.2.3", b"abc", b"1e", b"."] {
            assert_eq!(parse_decimal(bad, 10, 2).map_err(|r| r.code()), Err(crate::ReasonCode::Malformed), "{bad:?}");
        }
    }
}
