//! The commands on the target database: prepare, check, teardown, verify.

use super::*;

pub(super) async fn prepare_plan(
    plan: &Plan,
    loaders: usize,
    ml: fleetload_db::ml::MlSettings,
) -> anyhow::Result<()> {
    let tpcc = plan.scenario.builtin() == Some(fleetload_common::scenario::Scenario::Tpcc);
    let what = if tpcc {
        format!("{} warehouses", plan.rows)
    } else {
        format!("{} rows", plan.rows)
    };
    println!(
        "preparing {what} of {} on {} ...",
        plan.scenario.name(),
        plan.target
    );
    let done = fleetload_db::prepare(&prepare_spec(plan, loaders, ml)).await?;
    let secs = done.elapsed.as_secs_f64();
    let table = if tpcc {
        "TPC-C's nine tables".to_string()
    } else {
        done.table.clone()
    };
    println!(
        "prepared {} rows in {table} in {secs:.2}s ({:.0} rows/s)",
        done.rows,
        done.rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

pub(super) async fn prepare(args: PrepareArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    prepare_plan(&plan, args.loaders, ml_settings(&plan)).await?;
    Ok(ExitCode::SUCCESS)
}

/// Prepare every statement of the plan's operations on one session, as each worker does
/// before a run, and say what was checked.
pub(super) async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    let connect =
        fleetload_db::connect::ConnectSpec::new(plan.target.clone(), plan.connect_timeout)?;
    let mut session = connect.connect().await?;
    let names: Vec<_> = plan.mix.iter().map(|(op, _)| op.clone()).collect();
    match &plan.scenario {
        fleetload_common::scenario_ref::ScenarioRef::File(file) => {
            let workload = fleetload_db::workloads::file::FileWorkload::new(
                std::sync::Arc::clone(file),
                plan.target.driver(),
                &names,
            )
            .map_err(anyhow::Error::msg)?;
            let result = workload.check(&mut session).await;
            session.close().await;
            result.map_err(anyhow::Error::msg)?;
            let statements: usize = names
                .iter()
                .filter_map(|n| file.operation(n))
                .map(|o| o.statements.len())
                .sum();
            println!(
                "{}: {} operations, {statements} statements prepare on {}",
                file.origin,
                names.len(),
                plan.target
            );
        }
        fleetload_common::scenario_ref::ScenarioRef::Builtin(s) => {
            let ops: Vec<_> = names.iter().filter_map(|n| n.builtin()).collect();
            let highest = fleetload_db::workloads::builtin::key_space(&mut session, *s).await;
            // Without `rows` in the plan, a run takes the table's key space.
            let rows = match highest {
                Ok(Some(n)) if !plan.rows_given && n > 0 => n,
                _ => plan.rows,
            };
            let (driver, url) = (plan.target.driver(), plan.target.url());
            let result = if *s == fleetload_common::scenario::Scenario::Tpcc {
                fleetload_db::workloads::tpcc::TpccWorkload::new(driver, plan.seed)
                    .check(&mut session, driver, &ops, url, rows)
                    .await
            } else {
                fleetload_db::workloads::builtin::BuiltinWorkload::new(
                    driver,
                    *s,
                    plan.seed,
                    plan.batch,
                    matches!(plan.ml, fleetload_common::plan::MlMode::Aurora { .. }),
                )
                .check(&mut session, driver, &ops, url, rows)
                .await
            };
            session.close().await;
            result.map_err(anyhow::Error::msg)?;
            println!(
                "{}: {} operations prepare on {}; `{}` holds keys 1..={rows}",
                s.name(),
                ops.len(),
                plan.target,
                s.table()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn teardown(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    let spec = prepare_spec(&plan, 1, fleetload_db::ml::MlSettings::default());
    let ran = fleetload_db::prepare::teardown(&spec)
        .await
        .map_err(|e| anyhow::anyhow!("teardown failed on {}: {}", e.target, e.message))?;
    println!(
        "ran {ran} teardown statements of {} on {}",
        plan.scenario.name(),
        plan.target
    );
    Ok(ExitCode::SUCCESS)
}

/// TPC-C's consistency conditions 1 to 4 on the target: each printed, each that fails
/// named; exit status 1 when one does.
async fn verify_tpcc(plan: &Plan) -> anyhow::Result<ExitCode> {
    let connect =
        fleetload_db::connect::ConnectSpec::new(plan.target.clone(), plan.connect_timeout)?;
    let mut session = connect.connect().await?;
    let checked = fleetload_db::workloads::tpcc::check::consistency(&mut session).await;
    session.close().await;
    let conditions = checked.map_err(|e| {
        anyhow::anyhow!(
            "cannot check TPC-C's consistency on {}: {}; is it a TPC-C database (`fleetload prepare --scenario tpcc`)?",
            plan.target,
            fleetload_db::session::describe(&e)
        )
    })?;
    let mut failed = 0;
    for c in &conditions {
        if c.holds() {
            println!("consistency condition {}: holds ({})", c.number, c.text);
        } else {
            failed += 1;
            println!(
                "consistency condition {}: FAILS in {} {} ({})",
                c.number,
                c.violations,
                if c.number == 1 {
                    "warehouses"
                } else {
                    "districts"
                },
                c.text
            );
        }
    }
    Ok(if failed == 0 {
        println!("TPC-C consistency: conditions 1-4 hold");
        ExitCode::SUCCESS
    } else {
        println!("TPC-C consistency: {failed} of 4 conditions fail");
        ExitCode::FAILURE
    })
}

pub(super) async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    use fleetload_db::verify::InsertRange;
    let plan = load_plan(&args.plan)?;
    if plan.scenario.builtin() == Some(fleetload_common::scenario::Scenario::Tpcc) {
        return verify_tpcc(&plan).await;
    }
    if plan.scenario.builtin() != Some(fleetload_common::scenario::Scenario::Churn) {
        bail!(
            "verify checks the churn scenario's predictions and TPC-C's consistency; the plan's scenario is {}",
            plan.scenario.name()
        );
    }
    let text = std::fs::read_to_string(&args.report)
        .with_context(|| format!("cannot read the report {}", args.report.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a fleetload report.json", args.report.display()))?;
    // A report of another database would only show its rows as missing here.
    let reported = report["plan"]["target"].as_str().unwrap_or_default();
    let same = fleetload_common::target::Target::parse(reported, None)
        .is_ok_and(|t| t.url() == plan.target.url());
    if reported.is_empty() {
        bail!(
            "{} names no target (plan.target): is it a fleetload report.json?",
            args.report.display()
        );
    }
    if !same {
        bail!(
            "{} is the report of a run on {}, not on {}: verify it against its own target (--target {reported})",
            args.report.display(),
            reported,
            plan.target
        );
    }
    let field = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    let expected = field(&report, "inserted_rows").with_context(|| {
        format!(
            "{} has no inserted_rows: it was written by an older fleetload",
            args.report.display()
        )
    })?;
    let ranges: Vec<InsertRange> = report["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| {
                    Some(InsertRange {
                        first: field(w, "insert_id_base")?,
                        last: field(w, "insert_id_last")?,
                        stride: field(w, "insert_id_stride")?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let found = fleetload_db::verify::verify(&plan.target, plan.connect_timeout, &ranges).await?;
    println!(
        "predictions: {} scored rows checked against the model, {} disagree",
        found.scored_rows,
        found.mismatches.len()
    );
    for m in found.mismatches.iter().take(10) {
        println!(
            "  customer {}: stored {:?}, the model says {:?}",
            m.id, m.stored, m.model
        );
    }
    println!(
        "inserts: the report counted {expected} inserted rows; the run's id ranges hold {}",
        found.inserted_found
    );
    if found.inserted_found != expected {
        let diff = expected.abs_diff(found.inserted_found);
        println!(
            "  {diff} rows {}",
            if found.inserted_found < expected {
                "are missing"
            } else {
                "more than the report counted"
            }
        );
    }
    let ok = found.mismatches.is_empty() && found.inserted_found == expected;
    println!("verify {}", if ok { "PASSED" } else { "FAILED" });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
