//! Launch-plan schedules as time arithmetic: a cron expression (five fields, or six with
//! seconds first; UTC) or a fixed rate anchored at activation, and which tick is due.
//!
//! Catch-up policy: ticks missed while no server ran are not replayed one by one — the most
//! recent missed tick fires once, and the count of the others is reported. Invariant: ticks
//! are strictly increasing; `due` never returns a tick at or before the one it was given as
//! already fired. Times are milliseconds since the Unix epoch; no clock is read here.

use crate::spec::ScheduleSpec;
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

/// Upper bound on cron ticks walked to find the most recent missed one (a per-second
/// schedule down for a day stays well inside).
const MAX_WALK: u32 = 200_000;

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<croner::Cron>),
    Rate { every_ms: i64 },
}

/// What to do now: fire `tick`, having skipped `missed` earlier ticks; the next is `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub tick: i64,
    pub missed: u64,
    pub next: i64,
}

/// Parses a cron expression: five fields, or six with seconds first.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("not a valid cron expression `{expr}`: {e}"))
}

/// Parses a fixed rate such as `15m`; at least one second.
pub fn parse_rate(rate: &str) -> Result<Duration, String> {
    match humantime::parse_duration(rate) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err("at least 1s".into()),
        Err(_) => Err(format!("expected a duration such as `15m`, got `{rate}`")),
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Schedule {
    /// The schedule of a launch plan; errors name `cron`, `rate` or the schedule itself.
    pub fn parse(s: &ScheduleSpec) -> Result<Schedule, (&'static str, String)> {
        match (&s.cron, &s.rate) {
            (Some(c), None) => Ok(Schedule::Cron(Box::new(parse_cron(c).map_err(|e| ("schedule.cron", e))?))),
            (None, Some(r)) => {
                let d = parse_rate(r).map_err(|e| ("schedule.rate", e))?;
                Ok(Schedule::Rate { every_ms: d.as_millis().min(i64::MAX as u128) as i64 })
            }
            _ => Err(("schedule", "give exactly one of `cron` or `rate`".into())),
        }
    }

    /// The first tick strictly after `after_ms`. A rate schedule ticks at `anchor + k·rate`.
    pub fn next_after(&self, after_ms: i64, anchor_ms: i64) -> Option<i64> {
        match self {
            Schedule::Rate { every_ms } => {
                if after_ms < anchor_ms {
                    return Some(anchor_ms);
                }
                let k = (after_ms - anchor_ms) / every_ms + 1;
                anchor_ms.checked_add(k.checked_mul(*every_ms)?)
            }
            Schedule::Cron(c) => {
                // Cron has one-second resolution: the next whole second after `after_ms`.
                let secs = after_ms.div_euclid(1000);
                c.find_next_occurrence(&utc(secs * 1000), false).ok().map(|t| t.timestamp_millis())
            }
        }
    }

    /// With `next` the earliest unfired tick: is one due at `now`, which, and what comes after.
    /// Ticks in `[next, now]` collapse into the most recent one (the catch-up policy).
    pub fn due(&self, next: i64, now: i64, anchor_ms: i64) -> Option<Due> {
        if now < next {
            return None;
        }
        let mut tick = next;
        let mut missed = 0u64;
        match self {
            Schedule::Rate { every_ms } => {
                let k = (now - next) / every_ms;
                tick = next + k * every_ms;
                missed = k as u64;
            }
            Schedule::Cron(_) => {
                for _ in 0..MAX_WALK {
                    match self.next_after(tick, anchor_ms) {
                        Some(t) if t <= now => {
                            tick = t;
                            missed += 1;
                        }
                        _ => break,
                    }
                }
            }
        }
        let next = self.next_after(now.max(tick), anchor_ms)?;
        Some(Due { tick, missed, next })
    }
}

/// The name of the execution a tick starts: the plan's name and the tick's UTC time
/// (`alpha-nightly-20261123020000`), at most 63 characters. The same tick always gets the same
/// name, which is what makes firing it twice a conflict instead of a second run.
pub fn tick_execution_name(launch_plan: &str, tick_ms: i64) -> String {
    let stamp = utc(tick_ms).format("%Y%m%d%H%M%S").to_string();
    let prefix = if launch_plan.len() <= 48 {
        launch_plan.to_string()
    } else {
        let d = crate::digest::digest(&serde_json::Value::String(launch_plan.into()));
        format!("{}-{}", launch_plan[..41].trim_end_matches(['-', '_']), &d[d.len() - 6..])
    };
    format!("{prefix}-{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Schedule {
        Schedule::parse(&ScheduleSpec { cron: None, rate: Some(s.into()) }).unwrap()
    }
    fn cron(s: &str) -> Schedule {
        Schedule::parse(&ScheduleSpec { cron: Some(s.into()), rate: None }).unwrap()
    }
    const DAY: i64 = 86_400_000;

    #[test]
    fn rate_ticks_from_its_anchor() {
        let s = rate("2s");
        assert_eq!(s.next_after(0, 1_000), Some(1_000));
        assert_eq!(s.next_after(1_000, 1_000), Some(3_000));
        assert_eq!(s.next_after(2_999, 1_000), Some(3_000));
        assert_eq!(s.due(3_000, 2_999, 1_000), None);
        assert_eq!(s.due(3_000, 3_000, 1_000), Some(Due { tick: 3_000, missed: 0, next: 5_000 }));
        // Down from 3.5 s to 10.2 s: ticks 5, 7, 9 missed → 9 fires once, 2 skipped.
        assert_eq!(s.due(5_000, 10_200, 1_000), Some(Due { tick: 9_000, missed: 2, next: 11_000 }));
    }

    #[test]
    fn cron_in_utc_with_optional_seconds() {
        let s = cron("0 2 * * *");
        let t = s.next_after(0, 0).unwrap();
        assert_eq!(t, 2 * 3_600_000);
        assert_eq!(s.next_after(t, 0), Some(t + DAY));
        let every_second = cron("* * * * * *");
        assert_eq!(every_second.next_after(1_500, 0), Some(2_000));
        let every_3s = cron("*/3 * * * * *");
        assert_eq!(every_3s.next_after(3_000, 0), Some(6_000));
    }

    #[test]
    fn cron_catch_up_fires_the_latest_missed_tick_once() {
        let s = cron("0 * * * *"); // hourly
        let h = 3_600_000;
        let d = s.due(h, 5 * h + 60_000, 0).unwrap();
        assert_eq!(d, Due { tick: 5 * h, missed: 4, next: 6 * h });
        assert_eq!(s.due(6 * h, 6 * h - 1, 0), None);
    }

    #[test]
    fn ticks_strictly_increase() {
        for s in [rate("1s"), rate("7s"), cron("*/2 * * * * *"), cron("*/5 * * * *")] {
            let mut next = s.next_after(0, 0).unwrap();
            let mut last = -1;
            let mut now = 0;
            for step in 0..500 {
                now += 700 * (step % 5 + 1);
                if let Some(d) = s.due(next, now, 0) {
                    assert!(d.tick > last && d.tick <= now && d.next > now, "{d:?} last {last} now {now}");
                    last = d.tick;
                    next = d.next;
                }
            }
        }
    }

    #[test]
    fn tick_names_are_stable_valid_ids() {
        let n = tick_execution_name("alpha-nightly", 2 * 3_600_000);
        assert_eq!(n, "alpha-nightly-19700101020000");
        let long = "a".repeat(63);
        let n = tick_execution_name(&long, 0);
        assert!(crate::names::check_id(&n).is_ok(), "{n}");
        assert_ne!(n, tick_execution_name(&format!("{}b", &long[..62]), 0));
    }

    #[test]
    fn bad_schedules_name_the_field() {
        let e = Schedule::parse(&ScheduleSpec { cron: Some("61 * * * *".into()), rate: None }).unwrap_err();
        assert_eq!(e.0, "schedule.cron");
        let e = Schedule::parse(&ScheduleSpec { cron: None, rate: Some("10ms".into()) }).unwrap_err();
        assert_eq!(e.0, "schedule.rate");
        let e = Schedule::parse(&ScheduleSpec { cron: None, rate: None }).unwrap_err();
        assert_eq!(e.0, "schedule");
    }
}
