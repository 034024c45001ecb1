//! What an outage or a failover cost the clients, measured per session (docs/design.md,
//! "Failovers"): each session's downtime from its first failure to its first success after it,
//! grouped into cluster-wide windows, with the operations that failed meanwhile and how
//! long the achieved rate took to come back to the plan's.

use super::*;
use fleetload_common::events::SessionOutage;
use fleetload_common::outcome::ErrorClass;
use fleetload_common::scenario::Role;

/// Session outages over a run, in windows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Availability {
    /// Session outages the workers reported (one session may have several).
    pub session_outages: usize,
    pub windows: Vec<AvailabilityWindow>,
}

/// One cluster-wide window: from the first failure of any session to the last
/// session's recovery (or the end of the run), with the sessions it took down.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AvailabilityWindow {
    /// The endpoint whose sessions it took down: `write` (the writer, and everything
    /// without a reader) or `read`.
    pub role: fleetload_common::scenario::Role,
    pub from_s: f64,
    pub to_s: f64,
    pub duration_s: f64,
    /// Session outages in the window.
    pub sessions: usize,
    /// Of those, sessions still down at the end of the run.
    pub unrecovered: usize,
    /// Per session: first success after − first failure.
    pub downtime_ms: Spread,
    /// Per session: first success after − last success before (the downtime plus the
    /// gap up to the first failure, which the rate bounds).
    pub since_last_ok_ms: Spread,
    /// Operations that failed during the sessions' outages, by class: counted once,
    /// never retried behind the report's back.
    pub failed: ClassCounts,
    pub per_worker: Vec<WorkerDowntime>,
    /// From the window's end until the cluster's ok/s is back at 95 % of the planned
    /// rate (open loop; `None` in closed loop or if it never came back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_back_s: Option<f64>,
    /// The instance most sessions were on when they failed, and the one most recovered
    /// on: after a failover, the old writer and the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_after: Option<String>,
}

/// A distribution over sessions.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_by(f64::total_cmp);
        let rank =
            |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Spread {
            p50: rank(0.5),
            p99: rank(0.99),
            max: values[values.len() - 1],
        }
    }
}

/// One worker's sessions in a window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerDowntime {
    pub worker: u32,
    pub name: String,
    pub sessions: usize,
    pub downtime_ms: Spread,
}

/// Where a session's outage ends: its recovery, or the end of the run.
fn end_of(o: &SessionOutage, run_end: f64) -> f64 {
    o.recovered.map_or(run_end, |r| r.as_secs_f64())
}

/// The windows of a run's session outages: outages that overlap, or start within an
/// interval of the window's end, are one window.
/// The planned cluster load (open loop) and how it divides among the roles, so a
/// window's rate is judged on its own role's operations: reads that recovered at once
/// are not held back by writes still failing over, nor the other way round.
pub(super) struct RolePlan<'a> {
    pub profile: &'a fleetload_common::profile::Profile,
    /// Each operation's role.
    pub role_of: &'a BTreeMap<OpName, Role>,
    /// Each role's share of the planned rate (its operations' weights in the mix).
    pub share: BTreeMap<Role, f64>,
}

pub(super) fn availability(
    outages: &[(u32, &SessionOutage)],
    workers: &[WorkerJson],
    intervals: &[IntervalJson],
    planned: Option<&RolePlan<'_>>,
    interval_s: f64,
    run_end: f64,
) -> Availability {
    let mut sorted: Vec<&(u32, &SessionOutage)> = outages.iter().collect();
    sorted.sort_by_key(|o| (o.1.role, o.1.first_failure));
    let mut groups: Vec<Vec<&(u32, &SessionOutage)>> = Vec::new();
    let mut end = f64::NEG_INFINITY;
    for o in sorted {
        let start = o.1.first_failure.as_secs_f64();
        match groups.last_mut() {
            Some(g) if g[0].1.role == o.1.role && start <= end + interval_s => g.push(o),
            _ => {
                end = f64::NEG_INFINITY;
                groups.push(vec![o]);
            }
        }
        end = end.max(end_of(o.1, run_end));
    }
    Availability {
        session_outages: outages.len(),
        windows: groups
            .iter()
            .map(|g| window(g, workers, intervals, planned, run_end))
            .collect(),
    }
}

fn window(
    group: &[&(u32, &SessionOutage)],
    workers: &[WorkerJson],
    intervals: &[IntervalJson],
    planned: Option<&RolePlan<'_>>,
    run_end: f64,
) -> AvailabilityWindow {
    let from_s = group
        .iter()
        .map(|o| o.1.first_failure.as_secs_f64())
        .fold(f64::INFINITY, f64::min);
    let to_s = group
        .iter()
        .map(|o| end_of(o.1, run_end))
        .fold(f64::NEG_INFINITY, f64::max);
    let downtime = |o: &SessionOutage| (end_of(o, run_end) - o.first_failure.as_secs_f64()) * 1e3;
    let mut failed = [0u64; ErrorClass::COUNT];
    for o in group {
        for (a, b) in failed.iter_mut().zip(o.1.failed) {
            *a = a.saturating_add(b);
        }
    }
    let mut per_worker: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for o in group {
        per_worker.entry(o.0).or_default().push(downtime(o.1));
    }
    AvailabilityWindow {
        role: group[0].1.role,
        from_s,
        to_s,
        duration_s: to_s - from_s,
        sessions: group.len(),
        unrecovered: group.iter().filter(|o| o.1.recovered.is_none()).count(),
        downtime_ms: Spread::of(group.iter().map(|o| downtime(o.1)).collect()),
        since_last_ok_ms: Spread::of(
            group
                .iter()
                .map(|o| {
                    let before = o.1.last_ok.unwrap_or(o.1.first_failure).as_secs_f64();
                    (end_of(o.1, run_end) - before) * 1e3
                })
                .collect(),
        ),
        failed: super::model::error_map(&failed),
        per_worker: per_worker
            .into_iter()
            .map(|(worker, d)| WorkerDowntime {
                worker,
                name: workers
                    .iter()
                    .find(|w| w.index == worker)
                    .map(|w| w.name.clone())
                    .unwrap_or_default(),
                sessions: d.len(),
                downtime_ms: Spread::of(d),
            })
            .collect(),
        rate_back_s: planned.and_then(|p| rate_back(intervals, p, group[0].1.role, to_s)),
        instance_before: most_common(group.iter().filter_map(|o| o.1.from_instance.as_deref())),
        instance_after: most_common(group.iter().filter_map(|o| o.1.to_instance.as_deref())),
    }
}

/// The name that occurs most often (the first of those, on a tie).
fn most_common<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for n in names {
        match counts.iter_mut().find(|(seen, _)| *seen == n) {
            Some((_, c)) => *c += 1,
            None => counts.push((n, 1)),
        }
    }
    let most = counts.iter().map(|(_, c)| *c).max()?;
    counts
        .into_iter()
        .find(|(_, c)| *c == most)
        .map(|(n, _)| n.to_string())
}

/// Seconds from `after` until the first whole interval whose ok/s of `role`'s
/// operations is at least 95 % of that role's share of the planned rate over it.
fn rate_back(
    intervals: &[IntervalJson],
    planned: &RolePlan<'_>,
    role: Role,
    after: f64,
) -> Option<f64> {
    let share = planned.share.get(&role).copied().unwrap_or(0.0);
    intervals
        .iter()
        .filter(|i| i.start_s >= after - 1e-9 && i.end_s > i.start_s)
        .find(|i| {
            let target =
                share * planned.profile.integral(i.start_s, i.end_s) / (i.end_s - i.start_s);
            let ok: f64 = i
                .operations
                .iter()
                .filter(|(op, _)| planned.role_of.get(*op) == Some(&role))
                .map(|(_, s)| s.ok_per_s)
                .sum();
            target > 0.0 && ok >= 0.95 * target
        })
        .map(|i| (i.start_s - after).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outage(session: u32, from_ms: u64, to_ms: Option<u64>) -> SessionOutage {
        let mut failed = [0; ErrorClass::COUNT];
        failed[ErrorClass::ReadOnly.index()] = 2;
        SessionOutage {
            session,
            role: fleetload_common::scenario::Role::Write,
            last_ok: Some(Duration::from_millis(from_ms.saturating_sub(10))),
            first_failure: Duration::from_millis(from_ms),
            recovered: to_ms.map(Duration::from_millis),
            failed,
            from_instance: Some("old".into()),
            to_instance: to_ms.map(|_| "new".into()),
        }
    }

    #[test]
    fn outages_close_in_time_are_one_window_with_the_spread_over_sessions() {
        let outages = [
            (0, outage(0, 3_000, Some(4_000))),
            (0, outage(1, 3_100, Some(4_600))),
            (1, outage(0, 3_050, Some(5_050))),
            // Long after: a second window, still down at the end (10 s).
            (1, outage(1, 8_000, None)),
        ];
        let refs: Vec<(u32, &SessionOutage)> = outages.iter().map(|(w, o)| (*w, o)).collect();
        let a = availability(&refs, &[], &[], None, 1.0, 10.0);
        assert_eq!(a.session_outages, 4);
        assert_eq!(a.windows.len(), 2);
        let w = &a.windows[0];
        assert_eq!((w.from_s, w.to_s, w.sessions), (3.0, 5.05, 3));
        assert!((w.downtime_ms.max - 2_000.0).abs() < 1e-6);
        assert!((w.downtime_ms.p50 - 1_500.0).abs() < 1e-6);
        assert_eq!(w.failed.get("read_only"), Some(&6));
        assert_eq!(w.per_worker.len(), 2);
        assert_eq!(w.instance_before.as_deref(), Some("old"));
        assert_eq!(w.instance_after.as_deref(), Some("new"));
        assert_eq!(a.windows[1].unrecovered, 1);
        assert_eq!(a.windows[1].to_s, 10.0);
    }

    /// An interval in which `read` and `write` ran at these ok/s.
    fn interval(k: u64, read: f64, write: f64) -> IntervalJson {
        let pct = serde_json::json!({"p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "p999_ms": 1.0, "max_ms": 1.0, "mean_ms": 1.0});
        let op = |ok: f64| {
            serde_json::json!({
                "count": ok as u64, "ok_per_s": ok, "errors": {}, "error_total": 0, "error_rate": 0.0,
                "dropped_backlog": 0, "response_time": pct, "service_time": pct,
            })
        };
        serde_json::from_value(serde_json::json!({
            "index": k, "start_s": k as f64, "end_s": k as f64 + 1.0, "warmup": false,
            "workers_reporting": 1, "late_snapshots": 0,
            "operations": {"read": op(read), "write": op(write)}, "per_worker": {},
        }))
        .unwrap()
    }

    #[test]
    fn the_rate_comes_back_per_role() {
        // 100 ops/s planned, half reads, half writes. Reads failed for a moment at 2 s
        // and were back at once; writes were down until 5 s.
        let profile = fleetload_common::profile::Profile::constant(100.0);
        let ops = |n: &str| fleetload_common::scenario::OpName::new(n).unwrap();
        let role_of: BTreeMap<_, _> =
            [(ops("read"), Role::Read), (ops("write"), Role::Write)].into();
        let plan = RolePlan {
            profile: &profile,
            role_of: &role_of,
            share: [(Role::Read, 0.5), (Role::Write, 0.5)].into(),
        };
        let intervals: Vec<IntervalJson> = (0..8)
            .map(|k| interval(k, 50.0, if (2..5).contains(&k) { 0.0 } else { 50.0 }))
            .collect();
        assert_eq!(rate_back(&intervals, &plan, Role::Read, 2.06), Some(0.94));
        assert_eq!(rate_back(&intervals, &plan, Role::Write, 2.06), Some(2.94));
    }
}
