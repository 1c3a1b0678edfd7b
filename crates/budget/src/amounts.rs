//! What is spent and what may be: dollars, a spend, and the limits of a run or a step.

use std::fmt;
use std::time::Duration;

/// An amount of US dollars, in nano-dollars (exact, and small enough for journals, whose
/// numbers are IEEE doubles: up to about nine million dollars).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(pub u64);

const NANOS_PER_USD: u64 = 1_000_000_000;

impl Usd {
    /// Parses "0.10", "$0.10" or "1e-3"; at most nine decimal places count.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim().trim_start_matches('$');
        let value: f64 = trimmed
            .parse()
            .map_err(|_| format!("'{text}' is not an amount of US dollars such as 0.10"))?;
        Self::from_f64(value).ok_or_else(|| format!("'{text}' must be between 0 and 9,000,000"))
    }

    /// Dollars as a float (prices in TOML are floats), rounded to the nearest nano-dollar.
    pub fn from_f64(value: f64) -> Option<Self> {
        (value.is_finite() && (0.0..=9.0e6).contains(&value))
            .then(|| Usd((value * NANOS_PER_USD as f64).round() as u64))
    }

    /// What `tokens` cost at `per_1k` per thousand tokens, rounded up to the next
    /// nano-dollar so that a reservation is never below the real price.
    pub fn for_tokens(per_1k: Usd, tokens: u64) -> Usd {
        let nanos = (per_1k.0 as u128 * tokens as u128).div_ceil(1000);
        Usd(nanos.min(u64::MAX as u128) as u64)
    }
}

impl fmt::Display for Usd {
    /// "$0.0123": whole cents always, then as many more digits as are not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / NANOS_PER_USD;
        let frac = format!("{:09}", self.0 % NANOS_PER_USD);
        let frac = frac.trim_end_matches('0');
        write!(f, "${whole}.{frac:0<2}")
    }
}

/// What an effect spends, or may spend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    pub tokens: u64,
    pub usd: Usd,
    pub fuel: u64,
    pub calls: u64,
}

impl Spend {
    /// Both, each amount saturating.
    pub fn plus(self, other: Spend) -> Spend {
        Spend {
            tokens: self.tokens.saturating_add(other.tokens),
            usd: Usd(self.usd.0.saturating_add(other.usd.0)),
            fuel: self.fuel.saturating_add(other.fuel),
            calls: self.calls.saturating_add(other.calls),
        }
    }

    pub(crate) fn minus(self, other: Spend) -> Spend {
        Spend {
            tokens: self.tokens.saturating_sub(other.tokens),
            usd: Usd(self.usd.0.saturating_sub(other.usd.0)),
            fuel: self.fuel.saturating_sub(other.fuel),
            calls: self.calls.saturating_sub(other.calls),
        }
    }
}

/// Limits of a run or a step; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetLimits {
    pub tokens: Option<u64>,
    pub usd: Option<Usd>,
    pub fuel: Option<u64>,
    pub calls: Option<u64>,
    pub time: Option<Duration>,
}

impl BudgetLimits {
    /// Parses `tokens=20000,usd=0.10,time=60s,fuel=1e9,calls=10` (any subset).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut limits = BudgetLimits::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let pair = part.split_once('=').ok_or_else(|| {
                format!("'{part}' is not KEY=VALUE (keys: tokens, usd, time, fuel, calls)")
            });
            // The messages quote what a flag or a file said: on one line, controls escaped.
            pair.and_then(|(key, value)| limits.set(key.trim(), value.trim()))
                .map_err(|e| baton_core::text::escape_controls(&e))?;
        }
        Ok(limits)
    }

    /// Sets one limit from its text.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let count = |what: &str| {
            value
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{key}={value}: {what} must be a whole number"))
        };
        match key {
            "tokens" => self.tokens = Some(count("tokens")?),
            "fuel" => self.fuel = Some(count("fuel")?),
            "calls" => self.calls = Some(count("calls")?),
            "usd" => self.usd = Some(Usd::parse(value).map_err(|e| format!("usd: {e}"))?),
            "time" => {
                self.time =
                    Some(baton_core::limits::duration(value).map_err(|e| format!("time: {e}"))?)
            }
            other => {
                return Err(format!(
                    "'{other}' is not a budget (tokens, usd, time, fuel, calls)"
                ));
            }
        }
        Ok(())
    }

    /// `self` with every limit `over` sets replaced by it.
    pub fn overridden_by(self, over: &BudgetLimits) -> BudgetLimits {
        BudgetLimits {
            tokens: over.tokens.or(self.tokens),
            usd: over.usd.or(self.usd),
            fuel: over.fuel.or(self.fuel),
            calls: over.calls.or(self.calls),
            time: over.time.or(self.time),
        }
    }

    /// The limits as `parse` reads them ("tokens=300,usd=$0.10"); empty when unlimited.
    pub fn to_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.tokens {
            parts.push(format!("tokens={n}"));
        }
        if let Some(usd) = self.usd {
            parts.push(format!("usd={usd}"));
        }
        if let Some(n) = self.calls {
            parts.push(format!("calls={n}"));
        }
        if let Some(n) = self.fuel {
            parts.push(format!("fuel={n}"));
        }
        if let Some(time) = self.time {
            parts.push(format!("time={}", humantime::format_duration(time)));
        }
        parts.join(",")
    }

    pub fn is_unlimited(&self) -> bool {
        *self == BudgetLimits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `workflows` fuzz target: a budget's error quoted a newline as it was.
    #[test]
    fn a_budget_error_is_one_line_whatever_it_quotes() {
        for text in [
            "tok\ns=4000,calls=4",
            "tokens=4\n0",
            "usd=\u{1b}[2J",
            "x\ny",
        ] {
            let err = BudgetLimits::parse(text).unwrap_err();
            assert!(!err.chars().any(char::is_control), "{err:?}");
        }
        assert!(
            BudgetLimits::parse("tok\ns=1")
                .unwrap_err()
                .contains("'tok\\ns'")
        );
    }
}
