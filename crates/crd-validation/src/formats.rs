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
static HEX_COLOR: LazyLock<Regex> = LazyLock::new(|| re(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGB_COLOR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$",
    )
});
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));
static BSON_OBJECT_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[0-9a-fA-F]{24}$"));
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^[-+]?(\d+(\.\d*)?|\.\d+)\s*(ns|us|µs|μs|ms|s|m|h|d|w)(\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*(ns|us|µs|μs|ms|s|m|h|d|w))*$",
    )
});

/// String formats the apiserver keeps in CRD schemas (go-openapi names, without dashes); any
/// other format is stripped and checks nothing.
const STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "quantity",
];

/// The format the apiserver actually applies for a node: what survives its stripping of
/// unsupported formats (by type: the string formats above, `int32`/`int64` for integers,
/// `float`/`double` for numbers, nothing for other types).
pub(crate) fn effective<'a>(type_: Option<&str>, format: Option<&'a str>) -> Option<&'a str> {
    let format = format?;
    let kept = match type_.unwrap_or("") {
        "" | "string" => STRING_FORMATS.contains(&normalize(format).as_str()),
        "integer" => matches!(format, "int32" | "int64"),
        "number" => matches!(format, "float" | "double"),
        _ => false,
    };
    kept.then_some(format)
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
        "hexcolor" => HEX_COLOR.is_match(value),
        "rgbcolor" => RGB_COLOR.is_match(value),
        "ssn" => SSN.is_match(value),
        "bsonobjectid" => BSON_OBJECT_ID.is_match(value),
        // uri, email, isbn*, creditcard, quantity: not checked here (documented gap);
        // password and numeric formats accept any string.
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
    fn every_checked_format_accepts_a_good_value_and_refuses_a_bad_one() {
        let cases = [
            ("uuid", "123e4567-e89b-12d3-a456-426614174000"),
            ("uuid3", "123e4567-e89b-32d3-a456-426614174000"),
            ("uuid4", "123e4567-e89b-42d3-a456-426614174000"),
            ("uuid5", "123e4567-e89b-52d3-a456-426614174000"),
            ("ipv4", "10.0.0.1"),
            ("ipv6", "::1"),
            ("cidr", "10.0.0.0/8"),
            ("hostname", "example.com"),
            ("mac", "00:11:22:33:44:55"),
            ("duration", "1h30m"),
            ("hexcolor", "#fff"),
            ("rgbcolor", "rgb(1, 2, 3)"),
            ("ssn", "123-45-6789"),
            ("bsonobjectid", "507f1f77bcf86cd799439011"),
            ("date", "2024-02-29"),
        ];
        for (format, good) in cases {
            assert!(is_valid(format, good), "{format} should accept {good}");
            assert!(
                !is_valid(format, "not valid!"),
                "{format} should refuse junk"
            );
        }
    }

    #[test]
    fn byte_format_requires_standard_base64() {
        assert!(is_valid("byte", "aGVsbG8="));
        assert!(!is_valid("byte", "not base64!"));
    }

    #[test]
    fn unknown_formats_are_stripped_and_known_ones_kept_by_type() {
        assert_eq!(
            effective(Some("string"), Some("date-time")),
            Some("date-time")
        );
        assert_eq!(effective(Some("string"), Some("my-format")), None);
        assert_eq!(effective(Some("integer"), Some("int32")), Some("int32"));
        assert_eq!(effective(Some("integer"), Some("date-time")), None);
        assert_eq!(effective(Some("object"), Some("byte")), None);
        assert!(is_valid("password", "anything"));
    }
}
