//! The plan's parsing and validation: what is accepted, what is refused and how.

use super::*;
use crate::scenario::Operation;

fn base() -> RawPlan {
    RawPlan {
        target: Some("sqlite:///tmp/x.db".into()),
        ..RawPlan::default()
    }
}

fn err(raw: RawPlan) -> String {
    Plan::try_from(raw).unwrap_err().to_string()
}

fn staged(stages: &[&str]) -> RawPlan {
    RawPlan {
        mode: Some(Mode::Open),
        rate: Some(100.0),
        stage: Some(
            stages
                .iter()
                .map(|s| RawStage::from_flag(s).unwrap())
                .collect(),
        ),
        ..base()
    }
}

#[test]
fn stages_become_the_cluster_profile_and_the_duration() {
    let plan = Plan::try_from(staged(&["ramp:10s:500", "hold:5s", "step:200:5s"])).unwrap();
    assert_eq!(plan.duration, Duration::from_secs(20));
    let p = plan.cluster_profile().unwrap();
    assert_eq!(p.value_at(0.0), 100.0);
    assert_eq!(p.value_at(5.0), 300.0);
    assert_eq!(p.value_at(12.0), 500.0);
    assert_eq!(p.value_at(15.0), 200.0);
    assert_eq!(
        plan.stages[2].describe("ops/s"),
        "step to 200 ops/s, hold 5s"
    );
    // The effective plan reads back into the same plan (which names its rows).
    let named = Plan {
        rows_given: true,
        ..plan.clone()
    };
    assert_eq!(Plan::try_from(plan.effective()).unwrap(), named);
    // Without a rate, an open-loop ramp starts from 0.
    let mut raw = staged(&["ramp:4s:400"]);
    raw.rate = None;
    assert_eq!(
        Plan::try_from(raw)
            .unwrap()
            .cluster_profile()
            .unwrap()
            .value_at(1.0),
        100.0
    );
}

#[test]
fn bad_stages_and_thresholds_name_what_is_wrong() {
    let e = err(RawPlan {
        stage: Some(vec![RawStage {
            ramp: Some("5s".into()),
            ..RawStage::default()
        }]),
        ..staged(&[])
    });
    assert!(e.contains("stage 1: ramp without `to`"), "{e}");
    let e = err(RawPlan {
        duration: Some("30s".into()),
        ..staged(&["hold:10s"])
    });
    assert!(e.contains("the stages last 10s"), "{e}");
    let e = err(RawPlan {
        stage: Some(vec![RawStage {
            hold: Some("1s".into()),
            step: Some(5.0),
            to: Some(3.0),
            ..RawStage::default()
        }]),
        ..staged(&[])
    });
    assert!(e.contains("`to` belongs to ramps"), "{e}");
    let e = err(RawPlan {
        thresholds: Some(vec!["p99 < fast".into()]),
        ..base()
    });
    assert!(e.contains("`thresholds`") && e.contains("unit"), "{e}");
    let e = err(RawPlan {
        abort_grace: Some("5s".into()),
        ..base()
    });
    assert!(e.contains("only used with abort_on_fail"), "{e}");
    assert!(RawStage::from_flag("jump:5")
        .unwrap_err()
        .contains("ramp:DURATION:TO"));
    let many = RawPlan {
        stage: Some(vec![
            RawStage {
                hold: Some("1s".into()),
                ..RawStage::default()
            };
            MAX_STAGES + 1
        ]),
        ..staged(&[])
    };
    assert!(err(many).contains("at most 1000"));
}

#[test]
fn a_minimal_plan_gets_documented_defaults() {
    let plan = Plan::try_from(base()).unwrap();
    assert_eq!(plan.scenario, ScenarioRef::Builtin(Scenario::PointSelect));
    assert_eq!(
        plan.load,
        LoadModel::Closed {
            think_time: Duration::ZERO
        }
    );
    assert_eq!(plan.sessions, DEFAULT_SESSIONS);
    assert_eq!(plan.interval, Duration::from_secs(1));
    assert_eq!(plan.interval_count(), 30);
}

#[test]
fn toml_and_flags_combine_with_flags_winning() {
    let file = RawPlan::from_toml(
        "target = \"mysql://root@127.0.0.1:3306/test\"\nscenario = \"churn\"\nrate = 500.0\nduration = \"10s\"\nwarmup = \"2s\"\n[mix]\nread_customer = 2\n",
    )
    .unwrap();
    let flags = RawPlan {
        rate: Some(800.0),
        sessions: Some(4),
        ..RawPlan::default()
    };
    let plan = Plan::try_from(file.overlay(flags).unwrap()).unwrap();
    assert_eq!(plan.scenario, ScenarioRef::Builtin(Scenario::Churn));
    assert_eq!(
        plan.load,
        LoadModel::Open {
            rate: 800.0,
            arrival: Arrival::Uniform,
            max_backlog: DEFAULT_MAX_BACKLOG
        }
    );
    assert_eq!(plan.sessions, 4);
    assert_eq!(plan.warmup, Duration::from_secs(2));
    assert_eq!(plan.mix, vec![(Operation::ReadCustomer.into(), 2)]);
    // The effective plan parses back into the same plan (which names its rows).
    let named = Plan {
        rows_given: true,
        ..plan.clone()
    };
    assert_eq!(Plan::try_from(plan.effective()).unwrap(), named);
}

#[test]
fn bad_plans_name_the_key_the_value_and_what_is_allowed() {
    let unknown = RawPlan::from_toml("target = \"sqlite://a.db\"\nrte = 5.0\n").unwrap_err();
    assert!(
        unknown.contains("rte") && unknown.contains("rate"),
        "{unknown}"
    );
    let e = err(RawPlan {
        rate: Some(-3.0),
        ..base()
    });
    assert!(
        e.contains("`rate`") && e.contains("-3") && e.contains("above 0"),
        "{e}"
    );
    let e = err(RawPlan {
        scenario: Some("tpch".into()),
        ..base()
    });
    assert!(
        e.contains("`scenario`") && e.contains("point_select, churn"),
        "{e}"
    );
    let e = err(RawPlan {
        duration: Some("ten seconds".into()),
        ..base()
    });
    assert!(e.contains("`duration`") && e.contains("30s"), "{e}");
    let e = err(RawPlan {
        warmup: Some("1500ms".into()),
        duration: Some("10s".into()),
        ..base()
    });
    assert!(e.contains("whole number of intervals"), "{e}");
    let e = err(RawPlan {
        mix: Some(parse_mix("read_customer=1").unwrap()),
        ..base()
    });
    assert!(e.contains("point_select"), "{e}");
    let e = err(RawPlan {
        sessions: Some(0),
        ..base()
    });
    assert!(e.contains("`sessions`"), "{e}");
    let e = err(RawPlan {
        mode: Some(Mode::Open),
        ..base()
    });
    assert!(e.contains("`rate` is required"), "{e}");
    let e = err(RawPlan::default());
    assert!(e.contains("`target` is required"), "{e}");
    assert!(parse_mix("a=x").is_err());
}

#[test]
fn every_plan_key_is_a_file_key_and_a_flag_from_one_struct() {
    let keys = RawPlan::keys();
    for key in [
        "target",
        "rate",
        "on_worker_loss",
        "stage",
        "thresholds",
        "ml_capacity",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    for key in &keys {
        // Any value: a type error is fine, an unknown key is not.
        let e = RawPlan::from_toml(&format!("{key} = 1"))
            .err()
            .unwrap_or_default();
        assert!(!e.contains("unknown field"), "{key}: {e}");
    }
    let e = RawPlan::from_toml("mode = \"sideways\"").unwrap_err();
    assert!(
        e.contains("sideways") && e.contains("open") && e.contains("closed"),
        "{e}"
    );
}

#[test]
fn overlay_lets_flags_win_and_refuses_a_rate_that_is_not_a_number() {
    let file =
        RawPlan::from_toml("rate = 100.0\nsessions = 4\nseed = 18446744073709551615").unwrap();
    let flags = RawPlan {
        rate: Some(250.0),
        ..RawPlan::default()
    };
    let both = file.clone().overlay(flags).unwrap();
    assert_eq!(both.rate, Some(250.0));
    assert_eq!(both.sessions, Some(4));
    assert_eq!(both.seed, Some(u64::MAX));
    let nan = RawPlan {
        rate: Some(f64::NAN),
        ..RawPlan::default()
    };
    let e = file.overlay(nan).unwrap_err().to_string();
    assert!(e.contains("`rate`") && e.contains("finite"), "{e}");
}

#[test]
fn a_reader_endpoint_must_be_of_the_cluster_and_have_reads_to_serve() {
    let plan = |extra: &str| {
        let raw = RawPlan::from_toml(&format!(
            "target = \"postgres://app@writer.example/shop\"\nrate = 10.0\n{extra}"
        ))
        .unwrap();
        Plan::try_from(raw)
    };
    let p = plan("reader = \"postgres://app@reader.example/shop\"\nreader_sessions = 3").unwrap();
    let r = p.reader.as_ref().expect("a reader");
    assert_eq!((r.sessions, p.all_sessions()), (3, p.sessions + 3));
    assert_eq!(p.roles(), vec![crate::scenario::Role::Read]);
    let e = plan("reader = \"mysql://app@reader.example/shop\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`reader`") && e.contains("same"), "{e}");
    let e = plan(
        "reader = \"postgres://app@r/shop\"\nscenario = \"churn\"\nmix = { insert_customer = 1 }",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no read operation"), "{e}");
    let e = plan("reader_sessions = 4").unwrap_err().to_string();
    assert!(e.contains("only used with `reader`"), "{e}");
}

#[test]
fn aws_logins_and_cloudwatch_are_checked_and_round_trip() {
    let pg = || RawPlan {
        target: Some("postgres://app@db.example:5432/test?sslmode=verify-full".into()),
        rate: Some(10.0),
        ..RawPlan::default()
    };
    let text = r#"
        target = "postgres://app@db.example:5432/test?sslmode=require"
        rate = 10
        auth = "iam"
        region = "eu-west-1"
        [cloudwatch]
        db_cluster = "churn"
        db_instances = ["churn-1", "churn-2"]
        sagemaker_endpoint = "churn-ep"
        period = "1m"
    "#;
    let plan = Plan::try_from(RawPlan::from_toml(text).unwrap()).unwrap();
    assert_eq!(
        plan.target.login(),
        &crate::target::Login::Iam {
            region: Some("eu-west-1".into())
        }
    );
    let cw = plan.cloudwatch.clone().unwrap();
    assert_eq!(
        (cw.region.as_deref(), cw.variant.as_str(), cw.period),
        (Some("eu-west-1"), "AllTraffic", Duration::from_secs(60))
    );
    assert_eq!(cw.db_instances, ["churn-1", "churn-2"]);
    // What the report records reads back as the same plan.
    let again = Plan::try_from(plan.effective()).unwrap();
    assert_eq!(
        (again.target.login(), again.cloudwatch),
        (plan.target.login(), plan.cloudwatch)
    );

    let secret = Plan::try_from(RawPlan {
        password_secret: Some("prod/db".into()),
        ..pg()
    })
    .unwrap();
    assert!(
        matches!(secret.target.login(), crate::target::Login::Secret { id, .. } if id == "prod/db")
    );

    for (raw, why) in [
        (
            RawPlan {
                auth: Some(AuthKind::Iam),
                password_env: Some("P".into()),
                ..pg()
            },
            "drop password_env",
        ),
        (
            RawPlan {
                password_env: Some("P".into()),
                password_secret: Some("s".into()),
                ..pg()
            },
            "one source",
        ),
        (
            RawPlan {
                region: Some("us-east-1".into()),
                ..pg()
            },
            "uses none of them",
        ),
        (
            RawPlan {
                auth: Some(AuthKind::Iam),
                target: Some("postgres://a@db/t".into()),
                ..pg()
            },
            "sslmode=require",
        ),
        (
            RawPlan {
                cloudwatch: Some(RawCloudWatch::default()),
                ..pg()
            },
            "db_cluster",
        ),
        (
            RawPlan {
                cloudwatch: Some(RawCloudWatch::from_flag("db_cluster=c,period=45s").unwrap()),
                ..pg()
            },
            "whole number of minutes",
        ),
        (
            RawPlan {
                cloudwatch: Some(RawCloudWatch::from_flag("db_instance=bad name").unwrap()),
                ..pg()
            },
            "identifier",
        ),
        (
            RawPlan {
                cloudwatch: Some(RawCloudWatch::from_flag("db_cluster=c,variant=v").unwrap()),
                ..pg()
            },
            "only used with sagemaker_endpoint",
        ),
    ] {
        let e = err(raw);
        assert!(e.contains(why), "{why}: {e}");
    }
    let e = RawCloudWatch::from_flag("cluster=x").unwrap_err();
    assert!(
        e.contains("unknown key") && e.contains("db_cluster="),
        "{e}"
    );
    let flag = RawCloudWatch::from_flag("db_cluster=c, db_instance=i1, db_instance=i2, period=5s")
        .unwrap();
    assert_eq!(
        (flag.db_instances.len(), flag.period.as_deref()),
        (2, Some("5s"))
    );
}

#[test]
fn tpcc_takes_warehouses_and_waits_only_where_they_mean_something() {
    let tpcc = || RawPlan {
        target: Some("sqlite:///tmp/x.db".into()),
        scenario: Some("tpcc".into()),
        ..RawPlan::default()
    };
    let plan = Plan::try_from(RawPlan {
        warehouses: Some(4),
        tpcc_wait: Some(true),
        ..tpcc()
    })
    .unwrap();
    assert_eq!((plan.rows, plan.tpcc_wait), (4, true));
    assert_eq!(plan.mix.len(), 5);
    for (raw, why) in [
        (
            RawPlan {
                warehouses: Some(4),
                rows: Some(5),
                ..tpcc()
            },
            "give one",
        ),
        (
            RawPlan {
                warehouses: Some(4),
                ..base()
            },
            "only the tpcc scenario has warehouses",
        ),
        (
            RawPlan {
                tpcc_wait: Some(true),
                ..base()
            },
            "TPC-C's",
        ),
        (
            RawPlan {
                tpcc_wait: Some(true),
                rate: Some(100.0),
                ..tpcc()
            },
            "closed loop",
        ),
        (
            RawPlan {
                warehouses: Some(1_000_000),
                ..tpcc()
            },
            "between 1 and 100000",
        ),
    ] {
        let e = err(raw);
        assert!(e.contains(why), "{why}: {e}");
    }
}

#[test]
fn a_misspelled_key_is_answered_with_the_nearest_one() {
    let e = RawPlan::from_toml("sesions = 4").unwrap_err();
    assert!(e.contains("did you mean `sessions`?"), "{e}");
    let e = RawPlan::from_toml("wramup = \"5s\"").unwrap_err();
    assert!(e.contains("did you mean `warmup`?"), "{e}");
    let e = RawPlan::from_toml("colour = 1").unwrap_err();
    assert!(!e.contains("did you mean"), "nothing near: {e}");
}

#[test]
fn a_plan_key_that_toml_moved_into_a_table_is_named_with_its_line() {
    let text = "rate = 10.0\n[[stage]]\nhold = \"5s\"\nsessions = 3\n";
    let e = RawPlan::from_toml(text).unwrap_err();
    assert!(
        e.contains("line 4: `sessions` is a plan key, but it comes after [[stage]]"),
        "{e}"
    );
    let e = RawPlan::from_toml("[mix]\npoint_select = 1\nduration = \"5s\"\n").unwrap_err();
    assert!(e.contains("`duration`") && e.contains("after [mix]"), "{e}");
    // A stage's own thresholds parse, and are flagged when they are the only ones.
    let text = "rate = 10.0\n[[stage]]\nhold = \"5s\"\nthresholds = [\"p99 < 5ms\"]\n";
    assert!(RawPlan::from_toml(text).is_ok());
    let lint = RawPlan::lint_toml(text);
    assert!(
        lint.len() == 1 && lint[0].contains("judges that stage only"),
        "{lint:?}"
    );
    let whole = format!("thresholds = [\"p99 < 9ms\"]\n{text}");
    assert!(RawPlan::lint_toml(&whole).is_empty());
    // [cloudwatch]'s own region is its own.
    assert!(moved("[cloudwatch]\nregion = \"eu-west-1\"\n").is_none());
}

fn moved(text: &str) -> Option<String> {
    RawPlan::from_toml(text)
        .err()
        .filter(|e| e.contains("is a plan key"))
}
