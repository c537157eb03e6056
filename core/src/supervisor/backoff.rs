//! Restart delays: exponential growth, a cap, and jitter.

use crate::config::BackoffConfig;
use std::time::Duration;

/// The delay before the `n`-th consecutive restart (1-based), with jitter from
/// `random` (a number in 0..1). The jitter applies after the cap, so delays at the
/// cap still spread (by ± `jitter` around `max`) and restarts of many instances do
/// not fall in step.
pub(crate) fn restart_delay(config: &BackoffConfig, n: u32, random: f64) -> Duration {
    let initial = config.initial.0.as_secs_f64();
    let max = config.max.0.as_secs_f64();
    let exp = n.saturating_sub(1).min(64) as i32;
    let base = (initial * config.factor.max(1.0).powi(exp)).min(max);
    let spread = config.jitter.clamp(0.0, 1.0) * (random.clamp(0.0, 1.0) * 2.0 - 1.0);
    let delay = (base * (1.0 + spread)).max(0.0);
    Duration::from_secs_f64(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    #[test]
    fn grows_and_caps() {
        let c = BackoffConfig {
            initial: HumanDuration::from_millis(100),
            max: HumanDuration::from_secs(1),
            factor: 2.0,
            jitter: 0.0,
            reset_after: HumanDuration::from_secs(60),
        };
        let d: Vec<u128> = (1..=6)
            .map(|n| restart_delay(&c, n, 0.5).as_millis())
            .collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_in_band() {
        let c = BackoffConfig {
            jitter: 0.5,
            ..BackoffConfig::default()
        };
        let lo = restart_delay(&c, 1, 0.0).as_millis();
        let hi = restart_delay(&c, 1, 1.0).as_millis();
        assert_eq!((lo, hi), (250, 750));
    }

    #[test]
    fn jitter_spreads_delays_at_the_cap() {
        let c = BackoffConfig {
            initial: HumanDuration::from_secs(1),
            max: HumanDuration::from_secs(10),
            jitter: 0.2,
            ..BackoffConfig::default()
        };
        let lo = restart_delay(&c, 20, 0.0).as_millis();
        let hi = restart_delay(&c, 20, 1.0).as_millis();
        assert_eq!((lo, hi), (8000, 12000));
    }
}
