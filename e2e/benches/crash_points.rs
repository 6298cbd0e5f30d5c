//! Issue 15's crash-at-every-write bench: for each variant and scenario, one recorded run to
//! count the operators' writes, then one run per write with the variant at that write
//! (`upstart_e2e::crash`), printing per scenario × variant the number of writes crashed at and
//! of invariant violations, each violation with its write and what was seen.
//!
//! `cargo bench -p upstart-e2e --bench crash_points`; settings from the environment:
//! `CRASH_SCENARIOS=chain,...` (default: all), `CRASH_VARIANTS=kill,graceful-stop,fail-409,
//! fail-429,fail-500,lease-stolen,lagging-watches,sigkill` (default: `kill`; `all` for every
//! one; `sigkill` needs `upstart-helmrelease-operator` built with the bench's profile),
//! `CRASH_POINT=after|before` (the write stored and
//! unanswered, the default, or not stored), `CRASH_EXPIRE_WATCHES=0` (the restarted operators'
//! first watches are not answered 410), `CRASH_EVERY=K` (every Kth write only, default 1).

use std::time::Instant;

use upstart_control_plane::PausePoint;
use upstart_e2e::crash::{CrashOptions, CrashPoints, Scenario, Variant, crash_loop, run_once};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

async fn bench() -> BenchResult<()> {
    let scenarios = match std::env::var("CRASH_SCENARIOS") {
        Ok(names) if !names.trim().is_empty() => names
            .split(',')
            .map(|name| {
                Scenario::from_name(name.trim()).ok_or_else(|| {
                    let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                    format!(
                        "CRASH_SCENARIOS: unknown scenario {name:?}; known: {}",
                        known.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => Scenario::ALL.to_vec(),
    };
    let variants = match std::env::var("CRASH_VARIANTS") {
        Ok(names) if names.trim() == "all" => Variant::ALL.to_vec(),
        Ok(names) if !names.trim().is_empty() => names
            .split(',')
            .map(|name| {
                Variant::from_name(name.trim()).ok_or_else(|| {
                    let known: Vec<String> = Variant::ALL.iter().map(|v| v.name()).collect();
                    format!(
                        "CRASH_VARIANTS: unknown variant {name:?}; known: {} (or all)",
                        known.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![Variant::Kill],
    };
    let point = match std::env::var("CRASH_POINT").as_deref() {
        Err(_) | Ok("" | "after") => PausePoint::AfterCommit,
        Ok("before") => PausePoint::BeforeCommit,
        Ok(other) => {
            return Err(format!("CRASH_POINT: {other:?} is neither `after` nor `before`").into());
        }
    };
    let expire_watches = std::env::var("CRASH_EXPIRE_WATCHES").as_deref() != Ok("0");
    let every: u32 = match std::env::var("CRASH_EVERY") {
        Ok(k) if !k.is_empty() => k
            .parse()
            .ok()
            .filter(|k| *k > 0)
            .ok_or_else(|| format!("CRASH_EVERY: {k:?} is not a positive number"))?,
        _ => 1,
    };
    eprintln!(
        "crash points: {point:?}, restarted watches expired: {expire_watches}, every {every} write(s)"
    );
    let mut reports = Vec::new();
    for (variant, scenario) in variants
        .iter()
        .flat_map(|v| scenarios.iter().map(move |s| (*v, *s)))
    {
        let options = CrashOptions {
            variant,
            point,
            expire_watches,
            ..CrashOptions::default()
        };
        let started = Instant::now();
        let points = if every == 1 {
            CrashPoints::All
        } else {
            let recorded = run_once(scenario, None, &options).await?.writes;
            CrashPoints::Sample((1..=recorded).step_by(every as usize).collect())
        };
        let report = crash_loop(scenario, &points, &options, |run| {
            let at = run
                .crash_at
                .map_or("recording".to_owned(), |n| format!("write {n}"));
            eprintln!(
                "{scenario} {variant} {at}: {} writes, {}, {} violations, {:.1}s",
                run.writes,
                if run.crashed {
                    "crashed"
                } else {
                    "not reached"
                },
                run.violations.len(),
                run.elapsed.as_secs_f64()
            );
        })
        .await?;
        eprintln!(
            "{scenario} {variant}: {:.0}s in all",
            started.elapsed().as_secs_f64()
        );
        reports.push(report);
    }
    println!();
    for report in &reports {
        print!("{report}");
    }
    Ok(())
}
