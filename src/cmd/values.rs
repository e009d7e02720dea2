//! The parsers of values that several options (of one tool or several) take: addresses,
//! durations, the sandbox mode. Each names the option in its complaint.

use std::time::Duration;

use spiped_transports::Address;

use super::parse::Mistake;

/// Upper bound for our own durations (`--drain-timeout`, `bench --seconds`). Longer
/// values are almost certainly typos (or milliseconds).
const MAX_SECONDS: f64 = 86_400.0;

/// What `-o` and `-r` values beyond it (C takes any, `inf` included) mean here: as good
/// as never, and small enough that `Instant + Duration` cannot overflow.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A required option's value, or the message naming it.
pub(crate) fn required(value: Option<String>, name: &str) -> Result<String, String> {
    value.ok_or_else(|| format!("missing required option {name}"))
}

/// Parses a source or target address, naming the option in the error.
pub(crate) fn address(s: &str, name: &str) -> Result<Address, Mistake> {
    Address::parse(s).map_err(|e| Mistake::Value(format!("{name}: {e}")))
}

/// Parses a `-b` address, where the port may be left out.
pub(crate) fn bind_address(s: Option<String>, name: &str) -> Result<Option<Address>, Mistake> {
    s.map(|s| Address::parse_bind(&s).map_err(|e| Mistake::Value(format!("{name}: {e}"))))
        .transpose()
}

/// The sandbox mode of `--sandbox MODE` and `--no-sandbox`, which contradict each other.
pub(crate) fn sandbox(mode: Option<String>, off: bool) -> Result<crate::sandbox::Mode, Mistake> {
    match (mode, off) {
        (Some(_), true) => Err("--sandbox and --no-sandbox cannot be used together"
            .to_owned()
            .into()),
        (None, true) => Ok(crate::sandbox::Mode::Off),
        (None, false) => Ok(crate::sandbox::Mode::On),
        (Some(m), false) => m
            .parse()
            .map_err(|e: crate::sandbox::UnknownMode| Mistake::Value(e.to_string())),
    }
}

/// Parses a positive, finite number of seconds, fractions allowed, at most one day.
pub(crate) fn seconds(s: &str, name: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid value '{s}' for {name}: {why}");
    let secs: f64 = s
        .parse()
        .map_err(|_| bad("expected a number of seconds, such as 5 or 0.5"))?;
    if !secs.is_finite() {
        return Err(bad("the number of seconds must be finite"));
    }
    if secs <= 0.0 {
        return Err(bad("the number of seconds must be greater than 0"));
    }
    if secs > MAX_SECONDS {
        return Err(bad("the number of seconds must be at most 86400 (one day)"));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        // Positive but below one nanosecond: would silently become a zero timeout.
        _ => Err(bad("the number of seconds is too small")),
    }
}

/// Parses `-o` or `-r` as C spiped 1.6 does (`PARSENUM(double, 0, INFINITY)`, then 0
/// means the default): leading blanks, decimal, `0x` whole numbers and `inf` are taken;
/// negative numbers, `nan` and trailing junk are refused. Values past a hundred years
/// become [`FOREVER`]; positive values below a nanosecond become one.
pub(crate) fn c_seconds(s: &str, name: &str, default: Duration) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid value '{s}' for {name}: {why}");
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let hex = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .and_then(|h| u64::from_str_radix(h, 16).ok());
    let secs = match hex {
        Some(n) => n as f64,
        None => t
            .parse::<f64>()
            .map_err(|_| bad("expected a number of seconds, such as 5 or 0.5"))?,
    };
    if secs.is_nan() {
        return Err(bad("expected a number of seconds, such as 5 or 0.5"));
    }
    if secs < 0.0 {
        return Err(bad("the number of seconds must not be negative"));
    }
    if secs == 0.0 {
        return Ok(default);
    }
    let d = Duration::try_from_secs_f64(secs).map_or(FOREVER, |d| d.min(FOREVER));
    Ok(d.max(Duration::from_nanos(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accepts_fractions_and_rejects_nonsense() {
        assert_eq!(seconds("0.5", "-o"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("5", "-o"), Ok(Duration::from_secs(5)));
        assert_eq!(seconds("86400", "-o"), Ok(Duration::from_secs(86_400)));
        for bad in [
            "0", "-1", "-0", "inf", "-inf", "nan", "NaN", "86400.5", "1e9", "x", "", " 5", "1e-300",
        ] {
            let e = seconds(bad, "-o/--timeout").unwrap_err();
            assert!(e.contains("-o/--timeout"), "{bad}: {e}");
        }
    }

    #[test]
    fn c_seconds_takes_what_c_spiped_takes() {
        let five = Duration::from_secs(5);
        let c = |s| c_seconds(s, "-o/--timeout", five);
        for (arg, want) in [
            ("0", five),
            ("-0", five),
            ("0.0", five),
            ("0.5", Duration::from_millis(500)),
            (" 7", Duration::from_secs(7)),
            ("0x10", Duration::from_secs(16)),
            ("90000", Duration::from_secs(90_000)),
            ("1e300", FOREVER),
            ("inf", FOREVER),
            ("infinity", FOREVER),
            ("1e-300", Duration::from_nanos(1)),
        ] {
            assert_eq!(c(arg), Ok(want), "{arg}");
        }
        for bad in ["-1", "-inf", "nan", "x", "", "5x", "5 ", "0x"] {
            let e = c(bad).unwrap_err();
            assert!(e.contains("-o/--timeout"), "{bad}: {e}");
        }
    }
}
