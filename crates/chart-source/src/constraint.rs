//! Helm's version constraint syntax (Masterminds/semver v3) evaluated over `semver` versions.
//!
//! Helm resolves `version:` with Masterminds/semver, whose rules differ from Cargo's in the
//! details that matter here: a partial version is a range (`1.2` is `>=1.2.0 <1.3.0`), `^0.1`
//! is `>=0.1.0 <0.2.0`, `>1.2` is `>=1.3.0`, `<=1.4` is `<1.5.0`, hyphen ranges are inclusive,
//! and a prerelease version only matches an AND-group in which some comparator names a
//! prerelease. This module reproduces those rules with its own small parser so the operator
//! resolves exactly what `helm` would.

use std::cmp::Ordering;
use std::fmt;

use semver::{BuildMetadata, Prerelease, Version};

/// A parsed constraint: OR-groups (`||`) of AND-ed comparators (spaces or commas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    source: String,
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    comparators: Vec<Comparator>,
    /// Whether some comparator names a prerelease: only then may prereleases match the group.
    allows_prerelease: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    /// The comparator's version with wildcards and missing parts filled with zero.
    version: Version,
    /// How much of the version was a wildcard or missing (`Masterminds` "dirty" flags).
    wild: Wild,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wild {
    /// `1.2.3`
    None,
    /// `1.2`, `1.2.x`
    Patch,
    /// `1`, `1.x`
    Minor,
    /// `*`, `x`
    Major,
}

/// Why a constraint could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintError(pub String);

impl fmt::Display for ConstraintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Constraint {
    /// The constraint Helm uses when no version is given: any stable version.
    pub fn any_stable() -> Self {
        Self::parse("*").unwrap_or_else(|_| unreachable!("`*` is a valid constraint"))
    }

    /// Parses a constraint in Helm's syntax.
    pub fn parse(text: &str) -> Result<Self, ConstraintError> {
        let source = text.trim();
        if source.is_empty() {
            return Err(ConstraintError("the constraint is empty".into()));
        }
        let groups = source
            .split("||")
            .map(parse_group)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: source.to_owned(),
            groups,
        })
    }

    /// Whether `version` satisfies the constraint.
    pub fn matches(&self, version: &Version) -> bool {
        self.groups.iter().any(|group| {
            (version.pre.is_empty() || group.allows_prerelease)
                && group.comparators.iter().all(|c| c.matches(version))
        })
    }

    /// The exact version this constraint pins, when it is a single `=`/bare full version.
    pub fn exact(&self) -> Option<&Version> {
        match self.groups.as_slice() {
            [group] => match group.comparators.as_slice() {
                [c] if c.op == Op::Eq && c.wild == Wild::None => Some(&c.version),
                _ => None,
            },
            _ => None,
        }
    }
}

fn parse_group(text: &str) -> Result<Group, ConstraintError> {
    let tokens: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Err(ConstraintError(
            "an empty alternative between `||` separators".into(),
        ));
    }
    let mut comparators = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        // An operator may be separated from its version by spaces (`>= 1.2`).
        let (text, used) = if is_operator(token) {
            let Some(next) = tokens.get(i + 1) else {
                return Err(ConstraintError(format!(
                    "operator `{token}` has no version"
                )));
            };
            (format!("{token}{next}"), 2)
        } else {
            (token.to_owned(), 1)
        };
        // Hyphen range: `A - B` means `>= A, <= B` (spaces around the hyphen are required).
        if used == 1 && tokens.get(i + 1) == Some(&"-") {
            let Some(upper) = tokens.get(i + 2) else {
                return Err(ConstraintError(format!(
                    "hyphen range `{token} -` has no upper bound"
                )));
            };
            comparators.push(parse_comparator(&format!(">={token}"))?);
            comparators.push(parse_comparator(&format!("<={upper}"))?);
            i += 3;
            continue;
        }
        comparators.push(parse_comparator(&text)?);
        i += used;
    }
    let allows_prerelease = comparators.iter().any(|c| !c.version.pre.is_empty());
    Ok(Group {
        comparators,
        allows_prerelease,
    })
}

fn is_operator(token: &str) -> bool {
    !token.is_empty() && token.chars().all(|c| "=!<>~^".contains(c))
}

fn parse_comparator(text: &str) -> Result<Comparator, ConstraintError> {
    let split = text
        .find(|c: char| !"=!<>~^".contains(c))
        .unwrap_or(text.len());
    let (op_text, version_text) = text.split_at(split);
    let op = match op_text {
        "" | "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        ">=" | "=>" => Op::Ge,
        "<" => Op::Lt,
        "<=" | "=<" => Op::Le,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        other => {
            return Err(ConstraintError(format!(
                "unknown operator `{other}` in `{text}`"
            )));
        }
    };
    let (version, wild) = parse_partial(version_text)
        .ok_or_else(|| ConstraintError(format!("`{version_text}` is not a version in `{text}`")))?;
    Ok(Comparator { op, version, wild })
}

fn is_wildcard(part: &str) -> bool {
    matches!(part, "x" | "X" | "*")
}

/// Parses `v1`, `1.2`, `1.2.x`, `*`, `1.2.3-rc.1+build` into a zero-filled version and how
/// much of it was a wildcard.
fn parse_partial(text: &str) -> Option<(Version, Wild)> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let (rest, build) = match text.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (text, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut numbers = [0u64; 3];
    let mut wild = Wild::None;
    for (index, part) in parts.iter().enumerate() {
        if is_wildcard(part) {
            wild = [Wild::Major, Wild::Minor, Wild::Patch][index];
            break;
        }
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        numbers[index] = part.parse().ok()?;
    }
    if wild == Wild::None && parts.len() < 3 {
        wild = if parts.len() == 1 {
            Wild::Minor
        } else {
            Wild::Patch
        };
    }
    let mut version = Version::new(numbers[0], numbers[1], numbers[2]);
    if pre == Some("") || build == Some("") {
        return None;
    }
    if let Some(pre) = pre {
        version.pre = Prerelease::new(pre).ok()?;
    }
    if let Some(build) = build {
        version.build = BuildMetadata::new(build).ok()?;
    }
    Some((version, wild))
}

/// Parses a chart version leniently, as Helm does: a leading `v` and missing minor/patch
/// parts are accepted (`v1.2` is `1.2.0`). Wildcards are not versions.
pub fn parse_version(text: &str) -> Option<Version> {
    let text = text.trim();
    let core = text.split(['-', '+']).next().unwrap_or_default();
    if core.contains(['x', 'X', '*']) {
        return None;
    }
    parse_partial(text).map(|(version, _)| version)
}

fn cmp(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.wild == Wild::Major {
            // `*` alone: any version for the inclusive operators, none for the strict ones.
            return matches!(self.op, Op::Eq | Op::Ge | Op::Le | Op::Tilde | Op::Caret);
        }
        match self.op {
            Op::Eq => match self.wild {
                Wild::None => cmp(v, c) == Ordering::Equal,
                _ => tilde(v, c, self.wild),
            },
            Op::Ne => match self.wild {
                Wild::None => cmp(v, c) != Ordering::Equal,
                Wild::Minor => v.major != c.major,
                _ => v.major != c.major || v.minor != c.minor,
            },
            Op::Gt => match self.wild {
                Wild::None => cmp(v, c) == Ordering::Greater,
                Wild::Minor => v.major > c.major,
                _ => v.major > c.major || (v.major == c.major && v.minor > c.minor),
            },
            Op::Ge => cmp(v, c) != Ordering::Less,
            Op::Lt => cmp(v, c) == Ordering::Less,
            Op::Le => match self.wild {
                Wild::None => cmp(v, c) != Ordering::Greater,
                Wild::Minor => v.major <= c.major,
                _ => v.major < c.major || (v.major == c.major && v.minor <= c.minor),
            },
            Op::Tilde => tilde(v, c, self.wild),
            Op::Caret => caret(v, c, self.wild),
        }
    }
}

/// `~1.2.3` is `>=1.2.3 <1.3.0`; `~1` is `>=1.0.0 <2.0.0`; `~0.0.0` is anything.
fn tilde(v: &Version, c: &Version, wild: Wild) -> bool {
    if cmp(v, c) == Ordering::Less {
        return false;
    }
    if c.major == 0 && c.minor == 0 && c.patch == 0 && wild == Wild::None {
        return true;
    }
    v.major == c.major && (wild == Wild::Minor || v.minor == c.minor)
}

/// `^1.2.3` is `>=1.2.3 <2.0.0`; `^0.2.3` is `>=0.2.3 <0.3.0`; `^0.0.3` is `=0.0.3`;
/// `^0` is `<1.0.0`; `^0.0` is `<0.1.0`.
fn caret(v: &Version, c: &Version, wild: Wild) -> bool {
    if cmp(v, c) == Ordering::Less {
        return false;
    }
    if c.major > 0 || wild == Wild::Minor {
        return v.major == c.major;
    }
    if v.major > 0 {
        return false;
    }
    if c.minor > 0 || wild == Wild::Patch {
        return v.minor == c.minor;
    }
    v.minor == 0 && v.patch == c.patch
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn check(constraint: &str, matching: &[&str], not_matching: &[&str]) {
        let c = Constraint::parse(constraint).unwrap();
        for m in matching {
            assert!(c.matches(&v(m)), "`{constraint}` should match {m}");
        }
        for m in not_matching {
            assert!(!c.matches(&v(m)), "`{constraint}` should not match {m}");
        }
    }

    #[test]
    fn caret_on_zero_major_stays_within_the_minor() {
        check("^0.1", &["0.1.0", "0.1.9"], &["0.0.9", "0.2.0", "1.0.0"]);
        check("^0.1.3", &["0.1.3", "0.1.9"], &["0.1.2", "0.2.0"]);
        check("^0.0.3", &["0.0.3"], &["0.0.4", "0.0.2", "0.1.0"]);
        check("^0.0", &["0.0.0", "0.0.9"], &["0.1.0"]);
        check("^0", &["0.0.0", "0.9.9"], &["1.0.0"]);
    }

    #[test]
    fn caret_on_nonzero_major_stays_within_the_major() {
        check("^1.2", &["1.2.0", "1.9.9"], &["1.1.9", "2.0.0"]);
        check("^1.2.3", &["1.2.3", "1.3.0"], &["1.2.2", "2.0.0"]);
        check("^1", &["1.0.0", "1.99.0"], &["0.9.0", "2.0.0"]);
        check("^1.x", &["1.0.0", "1.5.0"], &["2.0.0"]);
    }

    #[test]
    fn tilde_stays_within_the_minor_unless_only_a_major_is_given() {
        check("~1.2", &["1.2.0", "1.2.9"], &["1.1.9", "1.3.0"]);
        check("~1.2.3", &["1.2.3", "1.2.9"], &["1.2.2", "1.3.0"]);
        check("~1", &["1.0.0", "1.9.0"], &["2.0.0", "0.9.0"]);
        check("~>1.2", &["1.2.5"], &["1.3.0"]);
        check("~0.0.0", &["0.0.0", "3.0.0"], &[]);
    }

    #[test]
    fn partial_versions_and_wildcards_are_ranges() {
        check("1.2", &["1.2.0", "1.2.7"], &["1.3.0", "1.1.0"]);
        check("1.2.x", &["1.2.0", "1.2.7"], &["1.3.0"]);
        check("=1", &["1.0.0", "1.9.9"], &["2.0.0"]);
        check("1.x", &["1.4.0"], &["2.0.0", "0.1.0"]);
        check("*", &["0.0.1", "9.9.9"], &[]);
        check("x", &["1.0.0"], &[]);
        check("1.2.3", &["1.2.3"], &["1.2.4"]);
        check("v1.2.3", &["1.2.3"], &["1.2.4"]);
    }

    #[test]
    fn greater_and_less_with_partial_versions_follow_helm() {
        check(">1.2", &["1.3.0", "2.0.0"], &["1.2.9", "1.2.0"]);
        check(">1", &["2.0.0"], &["1.9.9"]);
        check(">1.2.3", &["1.2.4"], &["1.2.3"]);
        check(">=1.2", &["1.2.0", "5.0.0"], &["1.1.9"]);
        check("<1.2", &["1.1.9"], &["1.2.0"]);
        check("<=1.4", &["1.4.9", "1.0.0"], &["1.5.0"]);
        check("<=1", &["1.9.9"], &["2.0.0"]);
        check("<=1.4.2", &["1.4.2"], &["1.4.3"]);
        check("=>1.0.0", &["1.0.0"], &["0.9.0"]);
        check("=<1.0.0", &["1.0.0"], &["1.0.1"]);
    }

    #[test]
    fn not_equal_excludes_the_version_or_the_whole_partial_range() {
        check("!=1.2.3", &["1.2.4", "1.2.2"], &["1.2.3"]);
        check("!=1.2", &["1.3.0", "1.1.0"], &["1.2.0", "1.2.5"]);
        check("!=1", &["2.0.0"], &["1.5.0"]);
    }

    #[test]
    fn and_by_space_or_comma_and_or_by_double_bar() {
        check(">=1.2 <2", &["1.2.0", "1.9.9"], &["2.0.0", "1.1.0"]);
        check(">=1.2, <2", &["1.5.0"], &["2.0.0"]);
        check(">= 1.2 , < 2", &["1.5.0"], &["2.1.0"]);
        check("^1.0 || ^3.0", &["1.1.0", "3.2.0"], &["2.0.0"]);
        check("<1 || >=3", &["0.5.0", "3.0.0"], &["1.0.0", "2.9.9"]);
    }

    #[test]
    fn hyphen_ranges_are_inclusive_and_partial_upper_bounds_cover_their_range() {
        check("1.2 - 1.4.5", &["1.2.0", "1.4.5"], &["1.1.9", "1.4.6"]);
        check("1.2 - 1.4", &["1.2.0", "1.4.9"], &["1.5.0"]);
        check("1.2.3 - 2", &["1.2.3", "2.9.0"], &["3.0.0", "1.2.2"]);
    }

    #[test]
    fn prereleases_match_only_groups_that_mention_a_prerelease() {
        check(">=1.0.0", &["1.0.0"], &["1.1.0-beta.1", "2.0.0-rc.1"]);
        check("*", &["1.0.0"], &["1.0.0-alpha"]);
        check("^1.2", &[], &["1.3.0-beta"]);
        check(
            ">=1.0.0-0",
            &["1.1.0-beta.1", "1.0.0"],
            &["0.9.0", "0.9.9-rc.1"],
        );
        // Unlike npm, Masterminds lets the group's permission cover every comparator, and
        // 2.0.0-rc.1 sorts below 2.0.0.
        check(
            ">=1.0.0-0 <2.0.0",
            &["1.5.0-rc.1", "2.0.0-rc.1"],
            &["2.0.0"],
        );
        check(
            "1.2.3-beta.2",
            &["1.2.3-beta.2"],
            &["1.2.3-beta.3", "1.2.3"],
        );
        check(
            "^1.2.3-alpha",
            &["1.2.3-alpha", "1.2.3-beta", "1.9.0"],
            &["2.0.0-alpha"],
        );
        // The other OR-group does not lend its prerelease permission.
        check(
            ">=2.0.0-0 || ^1.0",
            &["2.1.0-rc.1", "1.2.0"],
            &["1.3.0-rc.1"],
        );
    }

    #[test]
    fn build_metadata_is_ignored_when_comparing() {
        check("1.2.3", &["1.2.3+build.7"], &[]);
        check(">1.2.3", &[], &["1.2.3+build.7"]);
    }

    #[test]
    fn exact_is_reported_only_for_a_single_full_version() {
        assert_eq!(
            Constraint::parse("1.2.3").unwrap().exact(),
            Some(&v("1.2.3"))
        );
        assert_eq!(
            Constraint::parse("=1.2.3-rc.1").unwrap().exact(),
            Some(&v("1.2.3-rc.1"))
        );
        assert!(Constraint::parse("1.2").unwrap().exact().is_none());
        assert!(Constraint::parse(">=1.2.3").unwrap().exact().is_none());
        assert!(
            Constraint::parse("1.2.3 || 1.2.4")
                .unwrap()
                .exact()
                .is_none()
        );
    }

    #[test]
    fn malformed_constraints_are_refused_with_a_reason() {
        for bad in [
            "", "  ", ">=", "1.2.3.4", "abc", "1.2 -", "=>>1", "1..2", ">=1.2 ||", "1.2.3-", "?1.2",
        ] {
            let error = Constraint::parse(bad).expect_err(bad);
            assert!(!error.0.is_empty());
        }
    }

    #[test]
    fn lenient_versions_accept_a_v_prefix_and_missing_parts() {
        assert_eq!(parse_version("v1.2.3"), Some(v("1.2.3")));
        assert_eq!(parse_version("1.2"), Some(v("1.2.0")));
        assert_eq!(parse_version("1"), Some(v("1.0.0")));
        assert_eq!(parse_version("1.2-beta"), Some(v("1.2.0-beta")));
        assert_eq!(parse_version("1.2.3+b"), Some(v("1.2.3+b")));
        assert_eq!(parse_version("1.x"), None);
        assert_eq!(parse_version("*"), None);
        assert_eq!(parse_version("latest"), None);
        assert_eq!(parse_version(""), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn stable() -> impl Strategy<Value = Version> {
            (0u64..4, 0u64..4, 0u64..4).prop_map(|(a, b, c)| Version::new(a, b, c))
        }

        fn any_version() -> impl Strategy<Value = Version> {
            (
                stable(),
                proptest::option::of(proptest::sample::select(vec![
                    "alpha", "beta.1", "rc.2", "0",
                ])),
            )
                .prop_map(|(mut v, pre)| {
                    if let Some(pre) = pre {
                        v.pre = Prerelease::new(pre).unwrap();
                    }
                    v
                })
        }

        fn same(a: &str, b: &str, v: &Version) -> Result<(), TestCaseError> {
            let (ca, cb) = (Constraint::parse(a).unwrap(), Constraint::parse(b).unwrap());
            prop_assert_eq!(ca.matches(v), cb.matches(v), "`{}` vs `{}` on {}", a, b, v);
            Ok(())
        }

        proptest! {
            #[test]
            fn shorthands_equal_their_explicit_ranges(c in stable(), v in any_version()) {
                let (x, y) = (c.major, c.minor);
                if x > 0 {
                    same(&format!("^{c}"), &format!(">={c} <{}.0.0", x + 1), &v)?;
                } else if y > 0 {
                    same(&format!("^{c}"), &format!(">={c} <0.{}.0", y + 1), &v)?;
                } else {
                    same(&format!("^{c}"), &format!("={c}"), &v)?;
                }
                // `~0.0.0` is Masterminds' special case for "anything".
                if c != Version::new(0, 0, 0) {
                    same(&format!("~{c}"), &format!(">={c} <{x}.{}.0", y + 1), &v)?;
                }
                same(&format!("{x}.{y}.x"), &format!(">={x}.{y}.0 <{x}.{}.0", y + 1), &v)?;
                same(&format!("{x}.{y}"), &format!(">={x}.{y}.0 <{x}.{}.0", y + 1), &v)?;
                same(&format!("{x}.x"), &format!(">={x}.0.0 <{}.0.0", x + 1), &v)?;
                same(&format!(">{x}.{y}"), &format!(">={x}.{}.0", y + 1), &v)?;
                same(&format!("<={x}.{y}"), &format!("<{x}.{}.0", y + 1), &v)?;
                same(&format!("{c} - {x}.{y}"), &format!(">={c} <{x}.{}.0", y + 1), &v)?;
            }

            #[test]
            fn or_is_either_and_not_equal_is_the_complement(a in stable(), b in stable(), v in stable()) {
                let either = Constraint::parse(&format!("{a} || {b}")).unwrap();
                prop_assert_eq!(either.matches(&v), v == a || v == b);
                let not = Constraint::parse(&format!("!={a}")).unwrap();
                prop_assert_eq!(not.matches(&v), v != a);
            }

            #[test]
            fn prereleases_never_match_constraints_without_one(c in stable(), v in any_version()) {
                prop_assume!(!v.pre.is_empty());
                for text in [format!("^{c}"), format!("~{c}"), format!(">={c}"), format!("<={c}"), format!("!={c}"), "*".to_owned()] {
                    prop_assert!(!Constraint::parse(&text).unwrap().matches(&v), "`{}` matched {}", text, v);
                }
            }
        }
    }
}
