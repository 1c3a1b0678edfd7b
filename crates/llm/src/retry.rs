//! When to try a provider again: exponential backoff with full jitter in its upper half,
//! or exactly what the provider asked for in Retry-After.

use std::time::Duration;

use rand::RngExt;

use baton_policy::llm::RetrySettings;

/// The wait before retry number `retry` (0 for the first retry), or why there is none.
pub fn delay(
    settings: &RetrySettings,
    retry: u32,
    retry_after: Option<Duration>,
) -> Result<Duration, String> {
    if let Some(asked) = retry_after {
        if asked > settings.max_backoff {
            return Err(format!(
                "the provider asked to retry after {}, longer than max_backoff {}",
                humantime::format_duration(asked),
                humantime::format_duration(settings.max_backoff)
            ));
        }
        return Ok(asked);
    }
    let ceiling = settings
        .backoff
        .saturating_mul(1u32.checked_shl(retry.min(30)).unwrap_or(u32::MAX))
        .min(settings.max_backoff);
    // Half fixed, half random: spreads retries of concurrent calls, never waits too little.
    let half = ceiling / 2;
    let jitter = rand::rng().random_range(0..=half.as_micros() as u64);
    Ok(half + Duration::from_micros(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: RetrySettings = RetrySettings {
        retries: 3,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    };

    #[test]
    fn backoff_doubles_within_its_jitter_and_is_capped() {
        for retry in 0..6 {
            let ceiling = (Duration::from_millis(100) * 2u32.pow(retry)).min(SETTINGS.max_backoff);
            let d = delay(&SETTINGS, retry, None).unwrap();
            assert!(d >= ceiling / 2 && d <= ceiling, "retry {retry}: {d:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_max_backoff() {
        let asked = Duration::from_millis(700);
        assert_eq!(delay(&SETTINGS, 0, Some(asked)), Ok(asked));
        let err = delay(&SETTINGS, 0, Some(Duration::from_secs(30))).unwrap_err();
        assert!(err.contains("longer than max_backoff 1s"), "{err}");
    }
}
