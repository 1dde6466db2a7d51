//! Schedules: a cron expression (5 fields, or 6 with seconds first, in the
//! agent's time zone) or a fixed interval written `every 30s`, `every 5m`,
//! `every 2h`, `every 1d`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::agent::AgentStatus;
use crate::{Error, Result};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Fires at the instants a cron expression matches.
    Cron(Box<Cron>),
    /// Fires every fixed period.
    Every(Duration),
}

/// Shortest interval accepted; shorter ones would just hammer the queue.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl Schedule {
    /// Parses a schedule string. Errors name the `schedule` field and say
    /// what forms are accepted.
    pub fn parse(text: &str) -> Result<Schedule> {
        let t = text.trim();
        if t.is_empty() {
            return Err(Error::validation(
                "schedule",
                "schedule is empty; use a cron expression such as \"*/5 * * * *\" or an interval such as \"every 30s\"",
            ));
        }
        if let Some(rest) = t.strip_prefix("every ") {
            return parse_interval(rest.trim()).map(Schedule::Every);
        }
        let fields = t.split_whitespace().count();
        if !t.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(Error::validation(
                "schedule",
                format!(
                    "cron expression {t:?} has {fields} fields; use 5 (minute hour day month weekday) or 6 (with seconds first), or \"every 30s\""
                ),
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        parser
            .parse(t)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| {
                Error::validation("schedule", format!("invalid cron expression {t:?}: {e}"))
            })
    }

    /// Parses a schedule given by a user (a new or changed agent) and
    /// refuses one that never fires (`0 0 30 2 *`, February 30th), which
    /// [`Schedule::parse`] alone would accept.
    pub fn parse_new(text: &str) -> Result<Schedule> {
        let s = Schedule::parse(text)?;
        if s.next_after(Utc::now(), Tz::UTC).is_none() {
            return Err(Error::validation(
                "schedule",
                format!(
                    "cron expression {:?} never fires (no date matches it, e.g. February 30th); check the day and month fields",
                    text.trim()
                ),
            ));
        }
        Ok(s)
    }

    /// The first firing strictly after `after`, evaluating cron in `tz`.
    /// An interval fires at `after + period`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| after + d),
            Schedule::Cron(c) => c
                .find_next_occurrence(&after.with_timezone(&tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// When the schedule fires next, seen at `now`: the one definition,
    /// which the API (an agent created, changed, approved or resumed) and
    /// the scheduler (moving on from a firing) both use. Moving on from the
    /// firing `fired`: the one after it, keeping the schedule's rhythm,
    /// unless that is already past (after downtime), then the first after
    /// `now`, so that downtime never ends in a burst. Starting afresh
    /// (`fired` none): the first after `now`, never catching up the time
    /// the agent was paused.
    pub fn next_firing(
        &self,
        fired: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        if let Some(t) = fired.and_then(|f| self.next_after(f, tz))
            && t > now
        {
            return Some(t);
        }
        self.next_after(now, tz)
    }

    /// The next `n` firings after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, tz: Tz, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t, tz) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

/// When an agent in `status` with `schedule` fires next, starting afresh
/// at `now` (created, changed, approved or resumed): only an agent whose
/// status fires ([`AgentStatus::fires_on_schedule`]) does.
pub fn first_firing(
    schedule: Option<&Schedule>,
    status: AgentStatus,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !status.fires_on_schedule() {
        return None;
    }
    schedule?.next_firing(None, now, tz)
}

fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || {
        Error::validation(
            "schedule",
            format!(
                "invalid interval {s:?}; write a whole number and a unit: \"every 30s\", \"every 5m\", \"every 2h\", \"every 1d\""
            ),
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => n,
        "m" | "min" | "mins" | "minute" | "minutes" => n.checked_mul(60).ok_or_else(bad)?,
        "h" | "hour" | "hours" => n.checked_mul(3_600).ok_or_else(bad)?,
        "d" | "day" | "days" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let d = Duration::from_secs(secs);
    if d < MIN_INTERVAL || secs > 366 * 86_400 {
        return Err(Error::validation(
            "schedule",
            "interval must be between 1 second and 366 days",
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn intervals() {
        assert!(
            matches!(Schedule::parse("every 30s").unwrap(), Schedule::Every(d) if d.as_secs() == 30)
        );
        assert!(
            matches!(Schedule::parse("every 5m").unwrap(), Schedule::Every(d) if d.as_secs() == 300)
        );
        assert!(Schedule::parse("every 0s").is_err());
        assert!(Schedule::parse("every banana").is_err());
        assert!(Schedule::parse("every 5 parsecs").is_err());
    }

    #[test]
    fn cron_five_and_six_fields() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 10, 7, 3).unwrap();
        let s = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(
            s.next_after(t0, Tz::UTC).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 11, 0, 0).unwrap()
        );
        let s = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(
            s.next_after(t0, Tz::UTC).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 10, 7, 10).unwrap()
        );
        let up = s.upcoming(t0, Tz::UTC, 3);
        assert_eq!(up.len(), 3);
        assert_eq!((up[2] - up[1]).num_seconds(), 10);
    }

    #[test]
    fn the_next_firing_keeps_the_rhythm_unless_it_is_past() {
        let at = |m, s| Utc.with_ymd_and_hms(2026, 1, 1, 10, m, s).unwrap();
        let every = Schedule::parse("every 30s").unwrap();
        let late = at(0, 0) + chrono::Duration::milliseconds(7);
        assert_eq!(
            every.next_firing(Some(at(0, 0)), late, Tz::UTC),
            Some(at(0, 30))
        );
        // Down for ten minutes: from now on, once.
        assert_eq!(
            every.next_firing(Some(at(0, 0)), at(10, 5), Tz::UTC),
            Some(at(10, 35))
        );
        assert_eq!(every.next_firing(None, at(3, 1), Tz::UTC), Some(at(3, 31)));
    }

    #[test]
    fn only_active_agents_fire() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 10, 7, 3).unwrap();
        let s = Schedule::parse("0 * * * *").unwrap();
        let hour = Utc.with_ymd_and_hms(2026, 1, 1, 11, 0, 0).unwrap();
        assert_eq!(
            first_firing(Some(&s), AgentStatus::Active, Tz::UTC, t0),
            Some(hour)
        );
        for st in AgentStatus::ALL
            .into_iter()
            .filter(|s| *s != AgentStatus::Active)
        {
            assert_eq!(first_firing(Some(&s), st, Tz::UTC, t0), None, "{st:?}");
        }
        assert_eq!(first_firing(None, AgentStatus::Active, Tz::UTC, t0), None);
    }

    #[test]
    fn cron_time_zone() {
        // 09:00 in Jerusalem (UTC+2 in January) is 07:00 UTC.
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let s = Schedule::parse("0 9 * * *").unwrap();
        let tz: Tz = "Asia/Jerusalem".parse().unwrap();
        assert_eq!(
            s.next_after(t0, tz).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 7, 0, 0).unwrap()
        );
    }

    #[test]
    fn a_cron_that_never_fires_is_refused() {
        for never in ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 11 *"] {
            assert!(Schedule::parse(never).is_ok(), "{never} parses");
            let e = Schedule::parse_new(never).unwrap_err();
            assert_eq!(e.field(), Some("schedule"), "{never}");
            assert!(e.to_string().contains("never fires"), "{never}: {e}");
        }
        for fires in ["0 0 29 2 *", "every 5m", "*/10 * * * * *"] {
            assert!(Schedule::parse_new(fires).is_ok(), "{fires}");
        }
    }

    #[test]
    fn bad_cron_names_the_field() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "hello world foo bar baz",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert_eq!(e.field(), Some("schedule"), "{bad}");
        }
    }
}
