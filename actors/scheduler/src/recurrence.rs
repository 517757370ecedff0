//! When the next occurrence of a recurring task is due: pure arithmetic on
//! the series' rule, in the owner's time zone.
//!
//! - `daily` adds `interval` days, `weekly` `7 × interval` days, `monthly`
//!   `interval` months on the series' anchor day, clamped to the month's
//!   last day (Jan 31 → Feb 28/29 → Mar 31).
//! - The date counts from the previous occurrence's due date (`anchor: due`)
//!   or from the moment it was completed (`anchor: completion`); a task with
//!   no due date counts from its completion.
//! - The wall-clock time of the series' first due date is kept across DST
//!   changes. A local time that falls in a DST gap moves forward to the
//!   first valid instant after the gap; an ambiguous local time (the hour
//!   repeated when clocks go back) takes its first occurrence.
//! - A next due date after `until` ends the series.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use taskflow_schemas::task::{Frequency, Recurrence, RecurrenceAnchor};

/// What a series remembers of its first occurrence, so that clamping and DST
/// adjustments of one occurrence never drift into the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The day of the month of the first due date, local (1–31).
    pub day: u32,
    /// The wall-clock time of the first due date, local.
    pub time: NaiveTime,
}

impl Anchor {
    /// The anchor of a series whose first occurrence is due at `due`.
    pub fn of(due: DateTime<Utc>, zone: Tz) -> Self {
        let local = due.with_timezone(&zone);
        Self {
            day: local.day(),
            time: local.time(),
        }
    }
}

/// The due date after an occurrence due at `previous_due` (if it had one)
/// and completed at `completed_at`; `None` when the series has ended.
pub fn next_due(
    rule: &Recurrence,
    zone: Tz,
    anchor: Anchor,
    previous_due: Option<DateTime<Utc>>,
    completed_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let (from, day) = match (rule.anchor, previous_due) {
        (RecurrenceAnchor::Due, Some(due)) => (due, anchor.day),
        (_, _) => {
            let day = completed_at.with_timezone(&zone).day();
            (completed_at, day)
        }
    };
    let from_date = from.with_timezone(&zone).date_naive();
    let interval = rule.interval.max(1);
    let date = match rule.frequency {
        Frequency::Daily => from_date.checked_add_signed(Duration::days(i64::from(interval)))?,
        Frequency::Weekly => {
            from_date.checked_add_signed(Duration::days(7 * i64::from(interval)))?
        }
        Frequency::Monthly => add_months_on_day(from_date, interval, day)?,
    };
    let next = resolve_local(zone, date.and_time(anchor.time))?;
    match rule.until {
        Some(until) if next > until => None,
        _ => Some(next),
    }
}

/// `months` after `date`'s month, on `day` or the month's last day if shorter.
fn add_months_on_day(date: NaiveDate, months: u32, day: u32) -> Option<NaiveDate> {
    let first = date.with_day(1)?.checked_add_months(Months::new(months))?;
    let last = first.checked_add_months(Months::new(1))?.pred_opt()?.day();
    first.with_day(day.min(last))
}

/// The instant of a local wall-clock time: the first of two when the hour
/// repeats, the first valid minute after a gap when it does not exist.
pub fn resolve_local(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Gaps are whole minutes and at most a day long in the tz database.
            let mut candidate = local.with_second(0)?.with_nanosecond(0)?;
            for _ in 0..24 * 60 {
                candidate += Duration::minutes(1);
                if let Some(instant) = zone.from_local_datetime(&candidate).earliest() {
                    return Some(instant.with_timezone(&Utc));
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::UTC;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn rule(frequency: Frequency, interval: u32) -> Recurrence {
        Recurrence {
            frequency,
            interval,
            until: None,
            anchor: RecurrenceAnchor::Due,
        }
    }

    /// The first `count` due dates of a series, each completed at its due date.
    fn series(
        rule: &Recurrence,
        zone: Tz,
        first: DateTime<Utc>,
        count: usize,
    ) -> Vec<DateTime<Utc>> {
        let anchor = Anchor::of(first, zone);
        let mut dues = vec![first];
        while dues.len() < count {
            let last = *dues.last().unwrap();
            match next_due(rule, zone, anchor, Some(last), last) {
                Some(next) => dues.push(next),
                None => break,
            }
        }
        dues
    }

    #[test]
    fn daily_and_weekly_add_days_times_the_interval() {
        let first = utc("2026-03-01T09:00:00Z");
        assert_eq!(
            series(&rule(Frequency::Daily, 1), UTC, first, 3),
            [
                first,
                utc("2026-03-02T09:00:00Z"),
                utc("2026-03-03T09:00:00Z")
            ]
        );
        assert_eq!(
            series(&rule(Frequency::Weekly, 2), UTC, first, 2),
            [first, utc("2026-03-15T09:00:00Z")]
        );
        assert_eq!(
            series(&rule(Frequency::Daily, 3), UTC, first, 2)[1],
            utc("2026-03-04T09:00:00Z")
        );
    }

    #[test]
    fn monthly_from_the_31st_clamps_and_returns_to_its_anchor_day() {
        let dues = series(
            &rule(Frequency::Monthly, 1),
            UTC,
            utc("2027-01-31T10:00:00Z"),
            4,
        );
        assert_eq!(
            dues,
            [
                utc("2027-01-31T10:00:00Z"),
                utc("2027-02-28T10:00:00Z"),
                utc("2027-03-31T10:00:00Z"),
                utc("2027-04-30T10:00:00Z"),
            ]
        );
        let leap = series(
            &rule(Frequency::Monthly, 1),
            UTC,
            utc("2028-01-31T10:00:00Z"),
            2,
        );
        assert_eq!(leap[1], utc("2028-02-29T10:00:00Z"));
        let quarterly = series(
            &rule(Frequency::Monthly, 3),
            UTC,
            utc("2026-11-30T10:00:00Z"),
            2,
        );
        assert_eq!(quarterly[1], utc("2027-02-28T10:00:00Z"));
    }

    #[test]
    fn until_ends_the_series_after_its_last_occurrence() {
        let mut daily = rule(Frequency::Daily, 1);
        daily.until = Some(utc("2026-03-03T09:00:00Z"));
        let dues = series(&daily, UTC, utc("2026-03-01T09:00:00Z"), 10);
        assert_eq!(dues.len(), 3, "{dues:?}");
    }

    #[test]
    fn the_completion_anchor_counts_from_when_it_was_done() {
        let mut every = rule(Frequency::Daily, 2);
        every.anchor = RecurrenceAnchor::Completion;
        let first = utc("2026-03-01T09:00:00Z");
        let anchor = Anchor::of(first, UTC);
        let done = utc("2026-03-05T17:30:00Z");
        assert_eq!(
            next_due(&every, UTC, anchor, Some(first), done),
            Some(utc("2026-03-07T09:00:00Z")),
            "two days after the completion, at the series' time"
        );
        let no_due = next_due(&rule(Frequency::Daily, 1), UTC, anchor, None, done);
        assert_eq!(no_due, Some(utc("2026-03-06T09:00:00Z")));
    }

    #[test]
    fn a_series_in_new_york_keeps_its_wall_clock_time_across_dst() {
        // 09:00 EST is 14:00 UTC; after the change on 2026-03-08, 09:00 EDT is 13:00 UTC.
        let dues = series(
            &rule(Frequency::Daily, 1),
            New_York,
            utc("2026-03-07T14:00:00Z"),
            3,
        );
        assert_eq!(
            dues,
            [
                utc("2026-03-07T14:00:00Z"),
                utc("2026-03-08T13:00:00Z"),
                utc("2026-03-09T13:00:00Z"),
            ]
        );
        // And back in November: 09:00 EDT (13:00 UTC) → 09:00 EST (14:00 UTC).
        let fall = series(
            &rule(Frequency::Weekly, 1),
            New_York,
            utc("2026-10-31T13:00:00Z"),
            2,
        );
        assert_eq!(fall[1], utc("2026-11-07T14:00:00Z"));
    }

    #[test]
    fn a_time_in_the_dst_gap_moves_to_the_first_valid_instant_and_does_not_drift() {
        // 02:30 on 2026-03-08 does not exist in New York: clocks jump 02:00 → 03:00 EDT.
        let first = utc("2026-03-07T07:30:00Z"); // 02:30 EST
        let dues = series(&rule(Frequency::Daily, 1), New_York, first, 3);
        assert_eq!(
            dues[1],
            utc("2026-03-08T07:00:00Z"),
            "03:00 EDT, the end of the gap"
        );
        assert_eq!(
            dues[2],
            utc("2026-03-09T06:30:00Z"),
            "back to 02:30, now EDT"
        );
    }

    #[test]
    fn an_ambiguous_time_takes_its_first_occurrence() {
        // 01:30 on 2026-11-01 happens twice in New York: first at EDT (05:30 UTC).
        let first = utc("2026-10-31T05:30:00Z"); // 01:30 EDT
        let dues = series(&rule(Frequency::Daily, 1), New_York, first, 2);
        assert_eq!(dues[1], utc("2026-11-01T05:30:00Z"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Zones with DST gaps and overlaps on both hemispheres, and none.
        const ZONES: [Tz; 6] = [
            chrono_tz::America::New_York,
            chrono_tz::Europe::Berlin,
            chrono_tz::Australia::Sydney,
            chrono_tz::America::Sao_Paulo,
            chrono_tz::Asia::Kolkata,
            chrono_tz::UTC,
        ];

        fn zone() -> impl Strategy<Value = Tz> {
            (0..ZONES.len()).prop_map(|index| ZONES[index])
        }

        /// Instants between 2000 and 2060, to the second.
        fn instant() -> impl Strategy<Value = DateTime<Utc>> {
            (946_684_800i64..2_871_763_200)
                .prop_map(|seconds| DateTime::from_timestamp(seconds, 0).expect("in range"))
        }

        fn frequency() -> impl Strategy<Value = Frequency> {
            prop_oneof![
                Just(Frequency::Daily),
                Just(Frequency::Weekly),
                Just(Frequency::Monthly)
            ]
        }

        proptest! {
            #[test]
            fn the_next_due_date_is_always_after_the_previous(
                frequency in frequency(),
                interval in 1u32..=365,
                zone in zone(),
                first in instant(),
            ) {
                let rule = Recurrence { frequency, interval, until: None, anchor: RecurrenceAnchor::Due };
                let anchor = Anchor::of(first, zone);
                let mut due = first;
                for _ in 0..3 {
                    let next = next_due(&rule, zone, anchor, Some(due), due).expect("no until");
                    prop_assert!(next > due, "{next} after {due} in {zone}");
                    due = next;
                }
            }

            #[test]
            fn monthly_keeps_its_anchor_day_whenever_the_month_has_it(
                zone in zone(),
                first in instant(),
                steps in 1usize..40,
            ) {
                let rule = Recurrence {
                    frequency: Frequency::Monthly,
                    interval: 1,
                    until: None,
                    anchor: RecurrenceAnchor::Due,
                };
                let anchor = Anchor::of(first, zone);
                let mut due = first;
                for _ in 0..steps {
                    due = next_due(&rule, zone, anchor, Some(due), due).expect("no until");
                    let local = due.with_timezone(&zone);
                    let last = add_months_on_day(local.date_naive(), 0, 31).expect("a day").day();
                    // A DST gap moves the time, never the day.
                    prop_assert_eq!(local.day(), anchor.day.min(last), "{}", local);
                }
            }

            #[test]
            fn a_local_time_always_resolves_never_earlier_and_within_a_day(
                zone in zone(),
                at in instant(),
                minutes in 0i64..1440,
            ) {
                let local = at.with_timezone(&zone).date_naive().and_hms_opt(0, 0, 0).unwrap()
                    + Duration::minutes(minutes);
                let resolved = resolve_local(zone, local).expect("every local time resolves");
                let shown = resolved.with_timezone(&zone).naive_local();
                prop_assert!(shown >= local, "{shown} is before {local}");
                prop_assert!(shown - local < Duration::hours(24));
                if zone.from_local_datetime(&local).single().is_some() {
                    prop_assert_eq!(shown, local, "a plain local time is kept exactly");
                }
            }

            #[test]
            fn until_is_never_passed(
                frequency in frequency(),
                zone in zone(),
                first in instant(),
                days in 0i64..400,
            ) {
                let until = first + Duration::days(days);
                let rule = Recurrence { frequency, interval: 1, until: Some(until), anchor: RecurrenceAnchor::Due };
                let anchor = Anchor::of(first, zone);
                let mut due = first;
                while let Some(next) = next_due(&rule, zone, anchor, Some(due), due) {
                    prop_assert!(next <= until);
                    due = next;
                }
            }
        }
    }
}
