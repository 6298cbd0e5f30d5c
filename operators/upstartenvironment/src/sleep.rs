//! Whether an environment sleeps at a given time (`spec.sleep`): five-field cron expressions
//! read in an IANA time zone, the manual switch, the next transition to requeue at. Pure.
//!
//! Cron is parsed here (about a hundred lines) rather than with a crate: the usual crates
//! (`cron`, `croner`) work on chrono and need `chrono-tz` for time zones, while jiff, which
//! k8s-openapi already compiles, has the zones and the civil-time arithmetic.

use std::collections::BTreeSet;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use upstart_api::v1alpha1::SleepSpec;

/// How far ahead a schedule is searched for its next firing (four years holds every 29 Feb).
const SEARCH_DAYS: i32 = 4 * 366;

/// A parsed five-field cron expression: minute, hour, day of month, month, day of week.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: BTreeSet<u8>,
    hours: BTreeSet<u8>,
    days: BTreeSet<u8>,
    months: BTreeSet<u8>,
    weekdays: BTreeSet<u8>,
    /// Day of month and day of week both restricted: either matches (as cron does).
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    /// Parses `expression`; the error says which field is wrong and why.
    pub fn parse(expression: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "{expression:?} has {} fields; a cron expression has five: minute hour \
                 day-of-month month day-of-week (e.g. \"0 20 * * 1-5\")",
                fields.len()
            ));
        };
        let weekdays = field(weekday, "day of week", 0, 7, &WEEKDAYS)?;
        // 7 is Sunday too.
        let weekdays = weekdays.into_iter().map(|d| d % 7).collect();
        Ok(Cron {
            minutes: field(minute, "minute", 0, 59, &[])?,
            hours: field(hour, "hour", 0, 23, &[])?,
            days: field(day, "day of month", 1, 31, &[])?,
            months: field(month, "month", 1, 12, &MONTHS)?,
            weekdays,
            either_day: !day.starts_with('*') && !weekday.starts_with('*'),
        })
    }

    fn matches_day(&self, date: Date) -> bool {
        if !self.months.contains(&(date.month() as u8)) {
            return false;
        }
        let day = self.days.contains(&(date.day() as u8));
        let weekday = self
            .weekdays
            .contains(&(date.weekday().to_sunday_zero_offset() as u8));
        if self.either_day {
            day || weekday
        } else {
            day && weekday
        }
    }

    /// The first time after `after` at which the expression fires in `zone`; `None` when it
    /// never does (e.g. `0 0 31 2 *`). A time skipped by a DST change fires at the first
    /// instant after the gap.
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let start = zone.to_datetime(after).date();
        let mut date = start;
        for _ in 0..SEARCH_DAYS {
            if self.matches_day(date) {
                for &hour in &self.hours {
                    for &minute in &self.minutes {
                        let civil = DateTime::new(
                            date.year(),
                            date.month(),
                            date.day(),
                            hour as i8,
                            minute as i8,
                            0,
                            0,
                        )
                        .ok()?;
                        let at = zone.to_ambiguous_timestamp(civil).compatible().ok()?;
                        if at > after {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.checked_add(1.day()).ok()?;
        }
        None
    }
}

/// One cron field: `*`, `N`, `A-B`, `*/S`, `A-B/S`, `N/S`, comma lists, names (`mon`, `jan`).
fn field(text: &str, what: &str, min: u8, max: u8, names: &[&str]) -> Result<BTreeSet<u8>, String> {
    let bad = |why: String| format!("cron {what} field {text:?}: {why}");
    let value = |part: &str| -> Result<u8, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(part)) {
            // Months are numbered from 1, weekdays from 0.
            return Ok(i as u8 + min);
        }
        let n: u8 = part
            .parse()
            .map_err(|_| bad(format!("{part:?} is not a number")))?;
        if n < min || n > max {
            return Err(bad(format!("{n} is outside {min}-{max}")));
        }
        Ok(n)
    };
    let mut set = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u8 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad(format!("step {step:?} is not a positive number")))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(bad(format!("range {range} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `N/S` starts at N and runs to the end of the range, as cron.
            (a, if part.contains('/') { max } else { a })
        };
        set.extend((from..=to).step_by(step as usize));
    }
    Ok(set)
}

/// Who decides whether an environment sleeps now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleepCause {
    /// No sleep configured, or the schedule says awake and no switch is set.
    None,
    /// The manual switch (`upstart env sleep` / `wake`).
    Manual,
    /// The schedule.
    Schedule,
}

impl SleepCause {
    /// As `status.sleep.by` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SleepCause::None | SleepCause::Schedule => "schedule",
            SleepCause::Manual => "manual",
        }
    }
}

/// Whether the environment sleeps at a time, and until when that holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SleepState {
    pub asleep: bool,
    pub by: SleepCause,
    /// The next scheduled sleep or wake (the reconcile requeues there).
    pub next_transition: Option<Timestamp>,
}

/// What `spec.sleep` says at `now`. Manual wins until the first scheduled transition after it
/// was set (so `upstart env wake` on a sleeping evening lasts until the next scheduled sleep,
/// not for ever); without `since`, or without a schedule, it wins until removed. The error
/// names the bad expression or time zone and how to write it.
pub fn state_at(sleep: Option<&SleepSpec>, now: Timestamp) -> Result<SleepState, String> {
    let awake = SleepState {
        asleep: false,
        by: SleepCause::None,
        next_transition: None,
    };
    let Some(sleep) = sleep else {
        return Ok(awake);
    };
    let schedule = match &sleep.schedule {
        None => None,
        Some(schedule) => {
            let name = schedule.time_zone.as_deref().unwrap_or("UTC");
            let zone = TimeZone::get(name).map_err(|_| {
                format!(
                    "spec.sleep.schedule.timeZone {name:?} is not a known IANA time zone (e.g. \
                     Europe/Paris, America/New_York, UTC)"
                )
            })?;
            let sleep_at = Cron::parse(&schedule.sleep)
                .map_err(|e| format!("spec.sleep.schedule.sleep: {e}"))?;
            let wake_at = Cron::parse(&schedule.wake)
                .map_err(|e| format!("spec.sleep.schedule.wake: {e}"))?;
            let never = |which: &str| {
                format!(
                    "spec.sleep.schedule.{which} never fires (no such date); fix the expression"
                )
            };
            // Checked once from now: an expression that fires never fires from any time.
            sleep_at
                .next_after(now, &zone)
                .ok_or_else(|| never("sleep"))?;
            wake_at
                .next_after(now, &zone)
                .ok_or_else(|| never("wake"))?;
            Some((sleep_at, wake_at, zone))
        }
    };
    // The schedule's next firing after `t`, and whether that firing is a wake (then the
    // schedule says asleep at `t`). Both at the same minute: the wake wins.
    let next = |t: Timestamp| {
        schedule.as_ref().and_then(|(sleep_at, wake_at, zone)| {
            let s = sleep_at.next_after(t, zone)?;
            let w = wake_at.next_after(t, zone)?;
            Some(if w <= s { (w, true) } else { (s, false) })
        })
    };
    let upcoming = next(now);
    if let Some(manual) = &sleep.manual {
        let holds = match (&manual.since, &schedule) {
            (Some(since), Some(_)) => next(since.0).is_none_or(|(at, _)| at > now),
            _ => true,
        };
        if holds {
            return Ok(SleepState {
                asleep: manual.asleep,
                by: SleepCause::Manual,
                next_transition: upcoming.map(|(at, _)| at),
            });
        }
    }
    Ok(match upcoming {
        Some((at, wake_next)) => SleepState {
            asleep: wake_next,
            by: SleepCause::Schedule,
            next_transition: Some(at),
        },
        None => awake,
    })
}

/// Whether a HelmRelease named `name`, with release key `key` (its service's `helmReleases`
/// key), is excluded from sleep.
pub fn excluded(sleep: Option<&SleepSpec>, name: &str, key: Option<&str>) -> bool {
    sleep.is_some_and(|s| {
        s.exclude_releases
            .iter()
            .any(|e| e == name || Some(e.as_str()) == key)
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use upstart_api::v1alpha1::{ManualSleep, SleepSchedule};

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn weekdays_in(zone: &str) -> SleepSpec {
        SleepSpec {
            schedule: Some(SleepSchedule {
                sleep: "0 20 * * 1-5".into(),
                wake: "0 7 * * mon-fri".into(),
                time_zone: Some(zone.into()),
            }),
            ..SleepSpec::default()
        }
    }

    #[test]
    fn cron_fires_at_the_next_matching_minute_in_its_zone() {
        let cron = Cron::parse("30 7 * * *").unwrap();
        let paris = TimeZone::get("Europe/Paris").unwrap();
        // 07:30 in Paris in December is 06:30 UTC.
        assert_eq!(
            cron.next_after(at("2026-12-07T06:00:00Z"), &paris),
            Some(at("2026-12-07T06:30:00Z"))
        );
        assert_eq!(
            cron.next_after(at("2026-12-07T06:30:00Z"), &paris),
            Some(at("2026-12-08T06:30:00Z"))
        );
    }

    #[test]
    fn cron_reads_steps_lists_ranges_and_names() {
        let cron = Cron::parse("*/15 9-17/4 1,15 jan-mar sun").unwrap();
        assert_eq!(cron.minutes, [0, 15, 30, 45].into());
        assert_eq!(cron.hours, [9, 13, 17].into());
        assert_eq!(cron.days, [1, 15].into());
        assert_eq!(cron.months, [1, 2, 3].into());
        assert_eq!(cron.weekdays, [0].into());
        assert!(cron.either_day);
        assert_eq!(Cron::parse("0 0 * * 7").unwrap().weekdays, [0].into());
    }

    #[test]
    fn day_of_month_or_day_of_week_fires_when_both_are_restricted() {
        // The 1st of the month or any Monday: Tuesday 2026-12-01, then Monday 2026-12-07.
        let cron = Cron::parse("0 0 1 * 1").unwrap();
        let utc = TimeZone::UTC;
        assert_eq!(
            cron.next_after(at("2026-11-30T12:00:00Z"), &utc),
            Some(at("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            cron.next_after(at("2026-12-01T00:00:00Z"), &utc),
            Some(at("2026-12-07T00:00:00Z"))
        );
    }

    #[test]
    fn bad_cron_fields_are_named_with_the_reason() {
        let error = Cron::parse("0 25 * * *").unwrap_err();
        assert!(
            error.contains("hour") && error.contains("outside 0-23"),
            "{error}"
        );
        let error = Cron::parse("0 20 * *").unwrap_err();
        assert!(error.contains("has 4 fields"), "{error}");
        let error = Cron::parse("*/0 * * * *").unwrap_err();
        assert!(error.contains("step"), "{error}");
        let error = Cron::parse("0 9-5 * * *").unwrap_err();
        assert!(error.contains("backwards"), "{error}");
        let error = Cron::parse("0 0 * foo *").unwrap_err();
        assert!(
            error.contains("month") && error.contains("\"foo\""),
            "{error}"
        );
    }

    #[test]
    fn a_time_skipped_by_daylight_saving_fires_after_the_gap() {
        // 2027-03-28 02:30 does not exist in Paris (clocks go 02:00 -> 03:00 = 01:00 UTC).
        let cron = Cron::parse("30 2 28 3 *").unwrap();
        let paris = TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(
            cron.next_after(at("2027-03-27T00:00:00Z"), &paris),
            Some(at("2027-03-28T01:30:00Z"))
        );
    }

    #[test]
    fn weekday_schedule_sleeps_at_night_and_over_the_weekend() {
        let spec = weekdays_in("Europe/Paris");
        // Monday 2026-12-07 12:00 Paris: awake, sleeps at 20:00 Paris (19:00 UTC).
        let noon = state_at(Some(&spec), at("2026-12-07T11:00:00Z")).unwrap();
        assert_eq!(
            noon,
            SleepState {
                asleep: false,
                by: SleepCause::Schedule,
                next_transition: Some(at("2026-12-07T19:00:00Z")),
            }
        );
        // Monday 23:00 Paris: asleep until Tuesday 07:00 Paris.
        let night = state_at(Some(&spec), at("2026-12-07T22:00:00Z")).unwrap();
        assert!(night.asleep);
        assert_eq!(night.next_transition, Some(at("2026-12-08T06:00:00Z")));
        // Saturday: asleep until Monday 07:00.
        let saturday = state_at(Some(&spec), at("2026-12-12T12:00:00Z")).unwrap();
        assert!(saturday.asleep);
        assert_eq!(saturday.next_transition, Some(at("2026-12-14T06:00:00Z")));
    }

    #[test]
    fn manual_switch_wins_until_the_next_scheduled_transition() {
        let mut spec = weekdays_in("UTC");
        // Woken by hand on Monday at 21:00 (the schedule says asleep since 20:00).
        spec.manual = Some(ManualSleep {
            asleep: false,
            since: Some(Time(at("2026-12-07T21:00:00Z"))),
        });
        let later = state_at(Some(&spec), at("2026-12-07T23:00:00Z")).unwrap();
        assert!(!later.asleep);
        assert_eq!(later.by, SleepCause::Manual);
        assert_eq!(later.next_transition, Some(at("2026-12-08T07:00:00Z")));
        // Tuesday 07:00 wakes it anyway, and 20:00 puts it to sleep: the schedule rules again.
        let tuesday_night = state_at(Some(&spec), at("2026-12-08T21:00:00Z")).unwrap();
        assert!(tuesday_night.asleep);
        assert_eq!(tuesday_night.by, SleepCause::Schedule);
    }

    #[test]
    fn manual_switch_without_a_schedule_holds_until_removed() {
        let spec = SleepSpec {
            manual: Some(ManualSleep {
                asleep: true,
                since: Some(Time(at("2026-12-07T10:00:00Z"))),
            }),
            ..SleepSpec::default()
        };
        let state = state_at(Some(&spec), at("2027-06-01T00:00:00Z")).unwrap();
        assert!(state.asleep);
        assert_eq!(state.next_transition, None);
        assert!(!state_at(None, at("2027-06-01T00:00:00Z")).unwrap().asleep);
    }

    #[test]
    fn unknown_time_zone_and_impossible_date_are_spec_errors() {
        let error =
            state_at(Some(&weekdays_in("Mars/Olympus")), Timestamp::UNIX_EPOCH).unwrap_err();
        assert!(
            error.contains("\"Mars/Olympus\" is not a known IANA time zone"),
            "{error}"
        );
        let mut spec = weekdays_in("UTC");
        spec.schedule.as_mut().unwrap().wake = "0 0 31 2 *".into();
        let error = state_at(Some(&spec), Timestamp::UNIX_EPOCH).unwrap_err();
        assert!(error.contains("wake never fires"), "{error}");
    }

    #[test]
    fn releases_are_excluded_by_name_or_by_key() {
        let spec = SleepSpec {
            exclude_releases: vec!["postgres".into(), "shop-cache".into()],
            ..SleepSpec::default()
        };
        assert!(excluded(Some(&spec), "shop-postgres", Some("postgres")));
        assert!(excluded(Some(&spec), "shop-cache", None));
        assert!(!excluded(Some(&spec), "shop-web", Some("web")));
        assert!(!excluded(None, "shop-postgres", Some("postgres")));
    }
}
