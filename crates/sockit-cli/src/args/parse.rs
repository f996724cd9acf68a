//! Value parsers of the shared flags: seconds in a range, byte values, `SO_LINGER`
//! seconds, `--max-conns`.

use std::time::Duration;

/// `--linger`: whole seconds, 0 to `i32::MAX` (`struct linger`'s `l_linger` is a C `int`).
pub fn parse_linger(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|s| *s <= i32::MAX as u32)
        .ok_or_else(|| format!("must be whole seconds, 0-{} (SO_LINGER)", i32::MAX))
}

/// `0x10` or `16`.
pub fn parse_byte_value(text: &str) -> Result<u32, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse::<u32>(),
    };
    parsed.map_err(|_| format!("not a number: {text:?} (decimal or 0x hex)"))
}

/// Seconds as a `Duration` (`1`, `0.5`), from 0 to 1e9: the value parser of `-i`, `-q`, `-d`.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, true, 1e9)
}

/// `--retry-delay SECS`: from 0.01 to 30 seconds (a retry never spins, and no single
/// wait exceeds the back-off's cap).
pub fn parse_retry_delay(text: &str) -> Result<Duration, String> {
    let max = sockit::retry::MAX_DELAY.as_secs_f64();
    parse_secs_in(text, false, max)
        .ok()
        .filter(|d| *d >= sockit::retry::MIN_DELAY)
        .ok_or_else(|| {
            format!(
                "must be at least {} and at most {max} seconds",
                sockit::retry::MIN_DELAY.as_secs_f64()
            )
        })
}

/// A connect timeout (`-w SECS`): more than 0 and at most 1e9 seconds.
///
/// `-w 0` is refused rather than given a meaning: ncat refuses it too ("must be greater
/// than 0"), OpenBSD nc turns it into a zero-length poll (every connect that is not
/// instant "times out"), and Python's `create_connection(timeout=0)` makes a non-blocking
/// socket whose connect fails with EINPROGRESS. No limit is spelled by leaving `-w` out.
pub fn parse_timeout_secs(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, false, 1e9).map_err(|range| format!("{range} (leave -w out for no limit)"))
}

/// An idle timeout (`-i SECS` of connect, listen, forward): more than 0 and at most 1e9
/// seconds, as echo-server's `--idle-timeout`.
///
/// `-i 0` (or a value that rounds to 0 ns) would drop every connection at once ("idle:
/// timed out"), so it is refused; no limit is spelled by leaving `-i` out. (`-q 0` stays
/// valid: nc's "quit at once after end of stdin"; `-d 0` is no delay between lines.)
pub fn parse_idle_secs(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, false, 1e9).map_err(|range| format!("{range} (leave -i out for no limit)"))
}

/// Seconds more than 0 and at most 1e9, for flags whose absence means a default or
/// nothing rather than "no limit" (`--stats-interval`, proxy's `-w` and
/// `--handshake-timeout`): the refusal states the range alone.
pub fn parse_positive_secs(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, false, 1e9)
}

/// `--stats-interval SECS`: at least 0.01 s (as bench's `--interval`; a finer tick only
/// floods the log) and at most 1e9 seconds.
pub fn parse_stats_interval(text: &str) -> Result<Duration, String> {
    const FLOOR: f64 = 0.01;
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (FLOOR..=1e9).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "must be at least 0.01 and at most 1e9 seconds".into())
}

/// Seconds within one flag's valid range: from 0 (`zero_ok`) or more than 0 (a value that
/// rounds to 0 ns counts as 0), up to `max`. Every refusal (not a number, NaN, infinite,
/// negative, too large) gets the same text stating that range once; clap puts the flag
/// and the value as typed before it.
pub fn parse_secs_in(text: &str, zero_ok: bool, max: f64) -> Result<Duration, String> {
    let max_text = if max >= 1e6 {
        format!("{max:e}")
    } else {
        format!("{max}")
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=max).contains(s))
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| zero_ok || !d.is_zero())
        .ok_or_else(|| {
            let range = if zero_ok {
                format!("must be at least 0 and at most {max_text} seconds")
            } else {
                format!("must be more than 0 and at most {max_text} seconds")
            };
            // A positive value under a nanosecond rounds to 0: say where the floor is.
            match text.trim().parse::<f64>() {
                Ok(s) if !zero_ok && s > 0.0 && s < 1e-9 => {
                    format!("{range}; the smallest is 1e-9 (1 ns)")
                }
                _ => range,
            }
        })
}

#[cfg(test)]
mod secs_tests {
    use super::*;

    #[test]
    fn stats_interval_has_a_floor_of_10_ms() {
        // Regression: `--stats-interval 0.000001` printed 671,531 lines a second.
        for bad in ["0", "0.000001", "0.0099", "-1", "nan", "inf", "1e10"] {
            assert_eq!(
                parse_stats_interval(bad),
                Err("must be at least 0.01 and at most 1e9 seconds".to_string()),
                "{bad}"
            );
        }
        assert_eq!(parse_stats_interval("0.01"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_stats_interval("2.5"), Ok(Duration::from_millis(2500)));
    }

    #[test]
    fn one_message_states_the_range() {
        let more = "must be more than 0 and at most 3600 seconds";
        for bad in ["0", "-1", "NaN", "inf", "1e300", "x", "", "3600.5"] {
            assert_eq!(parse_secs_in(bad, false, 3600.0), Err(more.into()), "{bad}");
        }
        assert_eq!(
            parse_secs_in("1e-12", false, 3600.0),
            Err(format!("{more}; the smallest is 1e-9 (1 ns)"))
        );
        assert_eq!(
            parse_secs_in("1.5", false, 3600.0),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(parse_secs_in("0", true, 3600.0), Ok(Duration::ZERO));
        assert_eq!(
            parse_secs_in("1e30", true, 3600.0),
            Err("must be at least 0 and at most 3600 seconds".into())
        );
        assert_eq!(
            parse_secs_in("-1", false, 1e9),
            Err("must be more than 0 and at most 1e9 seconds".into())
        );
    }
}

/// `--max-conns N`: 1 to 16,777,216 in every server. 0 is a usage error: it would turn
/// every client away (ncat's `--max-conns 0` does that; README says so).
pub fn parse_max_conns(text: &str) -> Result<usize, String> {
    let max = sockit::serve::MAX_CONNS;
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(0) => Err(format!(
            "must be at least 1 and at most {max} (0 would turn every client away)"
        )),
        _ => Err(format!("must be at least 1 and at most {max}")),
    }
}

/// `--drain SECS`: 0 (abort at once) to 1e9 seconds.
pub fn parse_drain(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, true, 1e9)
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    #[test]
    fn max_conns_zero_is_refused() {
        assert!(parse_max_conns("0").unwrap_err().contains("at least 1"));
        assert_eq!(parse_max_conns("3"), Ok(3));
        assert!(parse_max_conns("16777217").is_err());
        assert!(parse_max_conns("x").is_err());
    }
}
