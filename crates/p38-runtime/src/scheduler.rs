//! The scheduler: one at a time (elected through a lease row), it finds
//! agents whose next firing is due, queues a run per firing and moves the
//! firing on. Each firing is a compare-and-set in the store, so even two
//! schedulers that both believe they lead cannot fire one instant twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use p38_core::agent::{MisfirePolicy, OverlapPolicy};
use p38_core::store::{DueAgent, FireResult, QueueSignal, Store};
use p38_core::task::{NewTask, TaskKind, Trigger};

/// How far ahead of its due time a run is queued. Short, so the overlap
/// policy still sees the previous run as it is at the due time.
pub const LOOKAHEAD: Duration = Duration::from_millis(250);

/// How late a firing may be before it counts as a misfire (downtime).
pub const MISFIRE_GRACE: Duration = Duration::from_secs(60);

/// What to do with one due agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The firing after this one (`None`: the schedule is unusable).
    pub next: Option<DateTime<Utc>>,
    /// Queue a run for this firing.
    pub run: bool,
    /// Skip the run when one is already queued or running.
    pub skip_if_busy: bool,
}

/// Decides one firing at `now`. Pure, so tests drive it with any clock.
/// After downtime it fires at most once (or not at all under the skip
/// policy) and moves on to the first firing after `now`: never a burst.
pub fn plan(due: &DueAgent, now: DateTime<Utc>) -> Plan {
    let Ok(sched) = &due.schedule else {
        return Plan {
            next: None,
            run: false,
            skip_if_busy: true,
        };
    };
    let next = sched.next_firing(Some(due.next_fire_at), now, due.settings.tz());
    let late = (now - due.next_fire_at).to_std().unwrap_or_default();
    let misfired = late > MISFIRE_GRACE;
    let run = !(misfired && due.settings.misfire == Some(MisfirePolicy::Skip));
    let skip_if_busy = due.settings.overlap != Some(OverlapPolicy::Queue);
    Plan {
        next,
        run,
        skip_if_busy,
    }
}

/// The scheduler loop of one process.
pub struct Scheduler {
    store: Arc<dyn Store>,
    signal: Arc<dyn QueueSignal>,
    changed: Arc<Notify>,
    holder: String,
    lease: Duration,
}

impl Scheduler {
    /// A scheduler named `holder`, woken early by `changed` (agent edits).
    pub fn new(
        store: Arc<dyn Store>,
        signal: Arc<dyn QueueSignal>,
        changed: Arc<Notify>,
        holder: String,
    ) -> Scheduler {
        Scheduler {
            store,
            signal,
            changed,
            holder,
            lease: Duration::from_secs(5),
        }
    }

    /// Sets how long leadership holds without renewal (default 5 s): a new
    /// leader takes over within this time after the old one dies.
    pub fn with_lease(mut self, lease: Duration) -> Scheduler {
        self.lease = lease;
        self
    }

    /// Runs until `shutdown` turns true, then gives up leadership.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let renew = self.lease / 3;
        let mut leading = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now_leading = match self.store.try_lead(&self.holder, self.lease).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e.report(), "scheduler lease check failed");
                    false
                }
            };
            if now_leading != leading {
                tracing::info!(holder = %self.holder, leading = now_leading, "scheduler leadership changed");
                leading = now_leading;
            }
            let mut wait = renew;
            if leading {
                match self.fire_due().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e.report(), "firing schedules failed"),
                }
                if let Ok(Some(next)) = self.store.next_fire_time().await {
                    let wake_at = next - chrono::Duration::from_std(LOOKAHEAD).unwrap_or_default();
                    let until = (wake_at - Utc::now()).to_std().unwrap_or_default();
                    wait = wait.min(until);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.changed.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        if leading {
            let _ = self.store.resign(&self.holder).await;
        }
    }

    /// Fires every agent due within [`LOOKAHEAD`]; true when there may be
    /// more right away. The runs are queued for their exact due time, so
    /// the database work happens before that instant and a worker, asleep
    /// until the earliest queued time, starts them on time. Firings go out
    /// on a few connections at once so that many agents due at the same
    /// second do not queue behind each other's commits.
    async fn fire_due(&self) -> p38_core::Result<bool> {
        const BATCH: u32 = 500;
        const LANES: usize = 4;
        let now = Utc::now();
        let horizon = now + chrono::Duration::from_std(LOOKAHEAD).unwrap_or_default();
        let due = self.store.due_agents(horizon, BATCH).await?;
        let full = due.len() == BATCH as usize;
        let mut lanes: Vec<Vec<DueAgent>> = (0..LANES).map(|_| Vec::new()).collect();
        for (i, d) in due.into_iter().enumerate() {
            lanes[i % LANES].push(d);
        }
        let mut set = tokio::task::JoinSet::new();
        for lane in lanes.into_iter().filter(|l| !l.is_empty()) {
            let (store, signal) = (self.store.clone(), self.signal.clone());
            set.spawn(async move {
                for d in lane {
                    fire_one(&*store, &*signal, &d, now).await?;
                }
                Ok::<(), p38_core::Error>(())
            });
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| p38_core::Error::internal_source("firing a due agent", e))??;
        }
        Ok(full)
    }
}

/// Fires one due agent.
async fn fire_one(
    store: &dyn Store,
    signal: &dyn QueueSignal,
    d: &DueAgent,
    now: DateTime<Utc>,
) -> p38_core::Result<()> {
    if let Err(why) = &d.schedule {
        tracing::warn!(agent = d.id, error = %why, "the stored schedule no longer parses; it is stopped");
    }
    let p = plan(d, now);
    let task = p.run.then_some(NewTask {
        agent_id: d.id,
        agent_version: d.version,
        trigger: Trigger::Schedule,
        kind: TaskKind::Agent,
        attempt: 1,
        retry_of: None,
        scheduled_at: d.next_fire_at,
    });
    match store
        .fire(d.id, d.next_fire_at, p.next, task, p.skip_if_busy)
        .await?
    {
        FireResult::Queued(id) => {
            tracing::debug!(agent = d.id, task = id, due = %d.next_fire_at, "schedule fired");
            signal.task_queued();
        }
        FireResult::Skipped => {
            tracing::debug!(agent = d.id, "firing skipped (overlap or misfire policy)")
        }
        FireResult::Lost => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use p38_core::agent::AgentSettings;

    fn due(schedule: &str, at: DateTime<Utc>, settings: AgentSettings) -> DueAgent {
        DueAgent {
            id: 1,
            version: 1,
            schedule: p38_core::schedule::Schedule::parse(schedule).map_err(|e| e.to_string()),
            settings,
            next_fire_at: at,
        }
    }

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap()
    }

    #[test]
    fn on_time_firings_keep_the_rhythm() {
        let p = plan(
            &due("every 30s", t(10, 0, 0), AgentSettings::default()),
            t(10, 0, 0),
        );
        assert_eq!(
            p,
            Plan {
                next: Some(t(10, 0, 30)),
                run: true,
                skip_if_busy: true
            }
        );
        // A few milliseconds late still keeps the interval's phase.
        let late = t(10, 0, 0) + chrono::Duration::milliseconds(7);
        assert_eq!(
            plan(
                &due("every 30s", t(10, 0, 0), AgentSettings::default()),
                late
            )
            .next,
            Some(t(10, 0, 30))
        );
        let p = plan(
            &due("0 * * * *", t(10, 0, 0), AgentSettings::default()),
            t(10, 0, 0),
        );
        assert_eq!(p.next, Some(t(11, 0, 0)));
        let p = plan(
            &due("*/15 * * * * *", t(10, 0, 15), AgentSettings::default()),
            t(10, 0, 15),
        );
        assert_eq!(p.next, Some(t(10, 0, 30)));
    }

    #[test]
    fn downtime_fires_once_by_default_then_moves_past_now() {
        // Down from 10:00 to 13:20: three hourly firings were missed.
        let p = plan(
            &due("0 * * * *", t(10, 0, 0), AgentSettings::default()),
            t(13, 20, 0),
        );
        assert!(p.run, "run once to catch up");
        assert_eq!(
            p.next,
            Some(t(14, 0, 0)),
            "no burst: the next firing is after now"
        );
    }

    #[test]
    fn downtime_with_the_skip_policy_fires_nothing() {
        let s = AgentSettings {
            misfire: Some(MisfirePolicy::Skip),
            ..Default::default()
        };
        let p = plan(&due("0 * * * *", t(10, 0, 0), s.clone()), t(13, 20, 0));
        assert!(!p.run);
        assert_eq!(p.next, Some(t(14, 0, 0)));
        // Within the grace it is not a misfire.
        let p = plan(&due("0 * * * *", t(10, 0, 0), s), t(10, 0, 30));
        assert!(p.run);
    }

    #[test]
    fn overlap_policy_and_time_zones() {
        let s = AgentSettings {
            overlap: Some(OverlapPolicy::Queue),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        };
        // 09:00 New York (UTC-5 in March before DST on the 8th) is 14:00 UTC.
        let p = plan(&due("0 9 * * *", t(14, 0, 0), s), t(14, 0, 0));
        assert!(!p.skip_if_busy);
        assert_eq!(
            p.next,
            Some(Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap())
        );
    }

    #[test]
    fn an_unparsable_stored_schedule_stops_instead_of_spinning() {
        let p = plan(
            &due("nonsense", t(10, 0, 0), AgentSettings::default()),
            t(10, 0, 0),
        );
        assert_eq!(p.next, None);
        assert!(!p.run);
    }
}
