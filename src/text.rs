//! Small text writers shared by the hot paths (forwarding headers, flow events) and the
//! tools: lowercase hex, decimal numbers and dotted decimal octets, without `fmt`'s
//! machinery.

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

/// `n` in decimal digits, written at the end of `buf`.
pub fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        // A digit.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// `n` in lowercase hex digits, no leading zeros, written at the end of `buf`.
pub fn hex_number(n: u64, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Writes octets as decimal numbers joined by dots into `out` (at least four bytes an
/// octet, less one) and returns how many bytes it wrote.
pub fn dotted_into(octets: &[u8], out: &mut [u8]) -> usize {
    let mut at = 0;
    let mut buf = [0u8; 20];
    for (i, &octet) in octets.iter().enumerate() {
        if i > 0 {
            out[at] = b'.';
            at += 1;
        }
        let digits = decimal(u64::from(octet), &mut buf);
        out[at..at + digits.len()].copy_from_slice(digits);
        at += digits.len();
    }
    at
}

/// Writes octets as decimal numbers joined by dots (`10.1.2`), as `Display` writes the
/// octets of an IPv4 address.
pub fn write_dotted(out: &mut impl fmt::Write, octets: &[u8]) -> fmt::Result {
    let mut buf = [0u8; 64];
    for (i, chunk) in octets.chunks(16).enumerate() {
        if i > 0 {
            out.write_char('.')?;
        }
        let len = dotted_into(chunk, &mut buf);
        // Digits and dots only.
        out.write_str(std::str::from_utf8(&buf[..len]).unwrap_or_default())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_dotted_octets() {
        assert_eq!(hex(&[0, 0xab, 0x1f]), "00ab1f");
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 255, 1_000_001, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
        let mut hex_buf = [0u8; 16];
        for n in [0, 7, 10, 255, 65_536, u64::MAX] {
            assert_eq!(hex_number(n, &mut hex_buf), format!("{n:x}").as_bytes());
        }
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
            let mut buf = [0u8; 15];
            let len = dotted_into(&octets, &mut buf);
            assert_eq!(&buf[..len], out.as_bytes());
        }
        let mut long = String::new();
        write_dotted(&mut long, &[7; 17]).unwrap();
        assert_eq!(long, ["7"; 17].join("."));
        for octets in [&[1u8, 22, 133][..], &[]] {
            let mut out = String::new();
            write_dotted(&mut out, octets).unwrap();
            let want: Vec<_> = octets.iter().map(u8::to_string).collect();
            assert_eq!(out, want.join("."));
        }
    }
}
