//! Small text writers shared by the hot paths (forwarding headers, flow events) and the
//! tools: lowercase hex and dotted decimal octets, without `fmt`'s machinery.

use std::fmt;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` into `out` as lowercase hex, two digits a byte; `out` holds exactly
/// twice as many bytes as `bytes`.
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(bytes, &mut out);
    // Hex digits only.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes octets as decimal numbers joined by dots (`10.1.2`), as `Display` writes the
/// octets of an IPv4 address.
pub fn write_dotted(out: &mut impl fmt::Write, octets: &[u8]) -> fmt::Result {
    for (i, &octet) in octets.iter().enumerate() {
        if i > 0 {
            out.write_char('.')?;
        }
        let mut digits = [0u8; 3];
        let mut at = digits.len();
        let mut n = octet;
        loop {
            at -= 1;
            digits[at] = b'0' + n % 10;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.write_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_dotted_octets() {
        assert_eq!(hex(&[0, 0xab, 0x1f]), "00ab1f");
        let mut two = [0u8; 2];
        hex_into(&[0x7f], &mut two);
        assert_eq!(&two, b"7f");
        for octets in [
            [0u8, 0, 0, 0],
            [10, 0, 0, 255],
            [192, 168, 100, 9],
            [255, 255, 255, 255],
        ] {
            let mut out = String::new();
            write_dotted(&mut out, &octets).unwrap();
            assert_eq!(out, std::net::Ipv4Addr::from(octets).to_string());
        }
    }
}
