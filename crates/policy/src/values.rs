//! Parsing of limit values, shared by policy files and command-line flags, so "64 MiB" and
//! "5s" mean the same everywhere and are checked by the same rules.

use std::fmt;
use std::time::Duration;

use baton_core::limits::MAX_MEMORY;

/// Smallest memory limit: one wasm page.
const MIN_MEMORY: u64 = 64 << 10;

pub fn fuel(text: &str) -> Result<u64, String> {
    let n: u64 = text
        .replace('_', "")
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number of fuel units"))?;
    check_fuel(n)
}

/// Largest fuel limit: journals store numbers as IEEE doubles (RFC 8785), exact to 2^53.
const MAX_FUEL: u64 = (1 << 53) - 1;

fn check_fuel(n: u64) -> Result<u64, String> {
    if n == 0 {
        return Err("fuel must be greater than 0".into());
    }
    if n > MAX_FUEL {
        return Err(format!("fuel must be at most {MAX_FUEL}"));
    }
    Ok(n)
}

pub fn memory(text: &str) -> Result<u64, String> {
    check_memory(bytes(text)?)
}

fn check_memory(n: u64) -> Result<u64, String> {
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&n) {
        return Err(format!(
            "memory must be between 64 KiB and 4 GiB (a 32-bit component cannot address more), \
             not {n} bytes"
        ));
    }
    Ok(n)
}

pub fn output(text: &str) -> Result<u64, String> {
    check_output(bytes(text)?)
}

fn check_output(n: u64) -> Result<u64, String> {
    if n == 0 {
        return Err("output must be greater than 0 bytes".into());
    }
    Ok(n)
}

pub fn timeout(text: &str) -> Result<Duration, String> {
    let d = baton_core::limits::duration(text)?;
    if d.is_zero() {
        return Err("timeout must be greater than 0".into());
    }
    Ok(d)
}

/// "64 MiB", "1MB", "4096" → bytes.
fn bytes(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("'{text}' is not a size such as \"64 MiB\" or 65536"))
}

/// serde adapters: policy files accept integers or strings for counts and sizes, strings for
/// durations, and report range errors through the TOML parser, which adds line and column.
pub mod de {
    use super::*;
    use serde::de::{Deserialize, Deserializer, Error, Visitor};

    pub fn fuel<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(Count {
            expecting: "a whole number of fuel units",
            parse: super::fuel,
            check: check_fuel,
        })
        .map(Some)
    }

    pub fn memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(Count {
            expecting: "a size such as \"64 MiB\" or a number of bytes",
            parse: super::memory,
            check: check_memory,
        })
        .map(Some)
    }

    pub fn output<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(Count {
            expecting: "a size such as \"1 MiB\" or a number of bytes",
            parse: super::output,
            check: check_output,
        })
        .map(Some)
    }

    pub fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: String = String::deserialize(d)?;
        super::timeout(&text).map(Some).map_err(D::Error::custom)
    }

    /// Accepts an integer (checked with `check`) or a string (parsed with `parse`).
    struct Count {
        expecting: &'static str,
        parse: fn(&str) -> Result<u64, String>,
        check: fn(u64) -> Result<u64, String>,
    }

    impl Visitor<'_> for Count {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<u64, E> {
            (self.check)(v).map_err(E::custom)
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<u64, E> {
            let v = u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))?;
            self.visit_u64(v)
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<u64, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_units_and_plain_bytes() {
        assert_eq!(memory("64 MiB"), Ok(64 << 20));
        assert_eq!(memory("65536"), Ok(65536));
        assert_eq!(output("1KiB"), Ok(1024));
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_reason() {
        assert!(
            memory("8 GiB")
                .unwrap_err()
                .contains("between 64 KiB and 4 GiB")
        );
        assert!(memory("lots").unwrap_err().contains("is not a size"));
        assert!(fuel("0").unwrap_err().contains("greater than 0"));
        assert!(fuel("9007199254740992").unwrap_err().contains("at most"));
        assert!(timeout("0s").unwrap_err().contains("greater than 0"));
        assert!(
            timeout("5 parsecs")
                .unwrap_err()
                .contains("is not a duration")
        );
    }

    #[test]
    fn fuel_accepts_underscores_like_toml() {
        assert_eq!(fuel("1_000_000"), Ok(1_000_000));
    }

    #[test]
    fn durations_use_human_units() {
        assert_eq!(timeout("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(timeout("2m"), Ok(Duration::from_secs(120)));
    }
}
