//! String `format` checks, following the go-openapi `strfmt` validators the apiserver uses.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static format regex is valid")
}

static DATE_TIME_TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(\d{2}):(\d{2}):(\d{2})(\.\d+)?(z|[+-]\d{2}:\d{2})$"));
static UUID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID4: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static MAC: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{4}\.){2}([0-9A-Fa-f]{4})$")
});
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^[-+]?(\d+(\.\d*)?|\.\d+)\s*(ns|us|µs|μs|ms|s|m|h|d|w)(\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*(ns|us|µs|μs|ms|s|m|h|d|w))*$",
    )
});

/// Whether `format` is one the apiserver validates for strings. Formats it does not know are
/// stripped from the schema and accept anything; so do `password` and the like.
pub(crate) fn is_checked(format: &str) -> bool {
    matches!(
        normalize(format).as_str(),
        "datetime"
            | "date"
            | "byte"
            | "uuid"
            | "uuid3"
            | "uuid4"
            | "uuid5"
            | "ipv4"
            | "ipv6"
            | "cidr"
            | "hostname"
            | "mac"
            | "duration"
    )
}

/// go-openapi's format-name normalisation: `date-time` and `datetime` are the same format.
fn normalize(format: &str) -> String {
    format.replace('-', "").to_ascii_lowercase()
}

/// Whether `value` is valid for `format`; formats not checked always pass.
pub(crate) fn is_valid(format: &str, value: &str) -> bool {
    match normalize(format).as_str() {
        "datetime" => is_date_time(value),
        "date" => is_date(value),
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(value)
            .is_ok(),
        "uuid" => UUID.is_match(value),
        "uuid3" => UUID3.is_match(value),
        "uuid4" => UUID4.is_match(value),
        "uuid5" => UUID5.is_match(value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(value),
        "hostname" => value.len() <= 255 && HOSTNAME.is_match(value),
        "mac" => MAC.is_match(value),
        "duration" => DURATION.is_match(value),
        _ => true,
    }
}

/// strfmt `IsDate`: `2006-01-02`, a real calendar date.
fn is_date(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// strfmt `IsDateTime`: a date, `T`, then `hh:mm:ss[.frac]` and `Z` or an offset.
fn is_date_time(value: &str) -> bool {
    if value.len() < 4 {
        return false;
    }
    let lower = value.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let Some(caps) = DATE_TIME_TIME.captures(parts[1]) else {
        return false;
    };
    caps[1] <= *"23" && caps[2] <= *"59" && caps[3] <= *"59"
}

fn is_cidr(value: &str) -> bool {
    let Some((ip, bits)) = value.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else if ip.parse::<Ipv6Addr>().is_ok() {
        bits <= 128
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_time_accepts_rfc3339_and_rejects_dates_alone() {
        assert!(is_valid("date-time", "2024-02-29T10:00:00Z"));
        assert!(is_valid("date-time", "2024-02-29T10:00:00.123+02:00"));
        assert!(!is_valid("date-time", "2023-02-29T10:00:00Z"));
        assert!(!is_valid("date-time", "2024-01-01"));
        assert!(!is_valid("date-time", "2024-01-01T25:00:00Z"));
    }

    #[test]
    fn byte_format_requires_standard_base64() {
        assert!(is_valid("byte", "aGVsbG8="));
        assert!(!is_valid("byte", "not base64!"));
    }

    #[test]
    fn unknown_formats_accept_anything() {
        assert!(is_valid("password", "anything"));
        assert!(!is_checked("password"));
    }
}
