//! Sizes ("64M", "2G", "4K" or integers) and addresses (integers, TOML hex literals such
//! as 0x0800_0000, or the same as strings).

use serde::{Deserialize, Deserializer, de};
use std::fmt;

/// A size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

/// A physical or guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Address(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(i64),
    Text(String),
}

fn parse_int(text: &str) -> Option<u64> {
    let t = text.replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// "64M" -> 64 MiB; suffixes K, M, G, T (binary), optional trailing "iB"/"B".
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.chars().last()? {
        'K' | 'k' => (&t[..t.len() - 1], 10),
        'M' | 'm' => (&t[..t.len() - 1], 20),
        'G' | 'g' => (&t[..t.len() - 1], 30),
        'T' | 't' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    parse_int(digits)?.checked_mul(1 << shift)
}

fn non_negative<E: de::Error>(v: i64, what: &str) -> Result<u64, E> {
    u64::try_from(v).map_err(|_| E::custom(format!("{what} must not be negative, got {v}")))
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(v) => non_negative(v, "a size").map(Size),
            Raw::Text(t) => parse_size(&t).map(Size).ok_or_else(|| {
                de::Error::custom(format!(
                    "invalid size {t:?}: expected e.g. \"64M\", \"2G\", \"4K\" or a byte count"
                ))
            }),
        }
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(v) => non_negative(v, "an address").map(Address),
            Raw::Text(t) => parse_int(t.trim()).map(Address).ok_or_else(|| {
                de::Error::custom(format!("invalid address {t:?}: expected e.g. 0x0800_0000"))
            }),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if v != 0 && v.is_multiple_of(1 << shift) {
                return write!(f, "{}{suffix}", v >> shift);
            }
        }
        write!(f, "{v}")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_suffixes_and_integers() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("4KiB"), Some(4096));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999T"), None, "overflow is an error");
        assert_eq!(Size(64 << 20).to_string(), "64M");
    }

    #[test]
    fn addresses_accept_hex_with_underscores() {
        #[derive(Deserialize)]
        struct T {
            a: Address,
            b: Address,
        }
        let t: T = toml::from_str("a = 0x0800_0000\nb = \"0x1_0000\"").unwrap();
        assert_eq!((t.a.0, t.b.0), (0x0800_0000, 0x1_0000));
        assert!(toml::from_str::<T>("a = -1\nb = 0").is_err());
    }
}
