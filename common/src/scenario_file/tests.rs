//! Scenario files: what parses, and what is refused with its line.
use super::*;

fn parse(text: &str) -> Result<ScenarioFile, ScenarioFileError> {
    ScenarioFile::parse("s.toml", "s", text)
}

/// The error for `text`, which must name `line` and contain every one of `words`.
fn refused(text: &str, line: usize, words: &[&str]) {
    let e = parse(text).expect_err("must be refused");
    assert_eq!(e.line, Some(line), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("scenario file s.toml, line {line}: ")),
        "{shown}"
    );
    for w in words {
        assert!(shown.contains(w), "{shown:?} lacks {w:?}");
    }
}

const OK: &str = "[[operation]]\nname = \"read\"\nsql = \"SELECT v FROM t WHERE id = :id\"\nparams.id = { gen = \"shard\" }\n";

#[test]
fn a_good_file_has_its_defaults() {
    let f = parse(OK).unwrap();
    assert_eq!(f.name, "s");
    assert_eq!(f.protocol, Protocol::Prepared);
    let op = &f.operations[0];
    assert_eq!((op.weight, op.retry, op.transaction), (1, 0, false));
    assert_eq!(op.line, 1);
    assert_eq!(op.params[0].generator, Generator::Shard);
    assert_eq!(op.params[0].line, 4);
}

#[test]
fn unknown_generator_names_the_operation_parameter_and_line() {
    refused(
        &OK.replace("\"shard\"", "\"shrad\""),
        4,
        &[
            "operation `read`",
            "parameter `id`",
            "unknown generator \"shrad\"",
            "scrambled_zipf",
        ],
    );
}

#[test]
fn parameter_used_but_not_defined() {
    refused(
        &OK.replace("id = :id", "id = :id AND k = :k"),
        3,
        &[
            "operation `read`",
            "uses :k, which is not defined",
            "params.k",
        ],
    );
}

#[test]
fn parameter_defined_but_not_used() {
    refused(
        &format!("{OK}params.k = {{ gen = \"int\", min = 1, max = 2 }}\n"),
        5,
        &["parameter `k` is defined but no statement uses :k"],
    );
}

#[test]
fn settings_a_generator_does_not_take_and_bad_bounds() {
    refused(
        &OK.replace("{ gen = \"shard\" }", "{ gen = \"int\", min = 5, max = 1 }"),
        4,
        &["min 5 is above max 1"],
    );
    refused(
        &OK.replace("{ gen = \"shard\" }", "{ gen = \"shard\", s = 0.9 }"),
        4,
        &["`s` is not a setting of `shard`"],
    );
    refused(
        &OK.replace(
            "{ gen = \"shard\" }",
            "{ gen = \"pick\", values = [1, 2], weights = [1] }",
        ),
        4,
        &["1 weights for 2 values"],
    );
    refused(
        &OK.replace("{ gen = \"shard\" }", "{ gen = \"row\" }"),
        4,
        &["`row` numbers the rows of [load]"],
    );
}

#[test]
fn toml_mistakes_and_unknown_keys_have_their_line() {
    refused(&format!("{OK}wieght = 3\n"), 5, &["unknown field `wieght`"]);
    refused("[[operation]]\nname = \"read\nsql = 1\n", 2, &[]);
}

#[test]
fn sql_mistakes_are_found_per_dialect() {
    refused(
        &OK.replace(":id\"", "?\""),
        3,
        &["(mysql)", "positional placeholder ?"],
    );
    refused(
        &OK.replace(
            "sql = \"SELECT v FROM t WHERE id = :id\"",
            "sql = { mysql = \"SELECT v FROM t WHERE id = :id\", oracle = \"x\" }",
        ),
        3,
        &["unknown dialect `oracle`"],
    );
    refused(
        &format!("{OK}\n[setup]\nsql = [\"DELETE FROM t WHERE id = :id\"]\n"),
        7,
        &["[setup] statements take no parameters"],
    );
}

#[test]
fn from_must_come_from_an_earlier_statement() {
    refused(
        "[[operation]]\nname = \"move\"\nsql = [\"UPDATE t SET v = 1 WHERE id = :id\", \"SELECT 1\"]\nparams.id = { from = \"id\" }\n",
        4,
        &["takes a value from an earlier statement, but the first statement uses it"],
    );
}

#[test]
fn an_operation_says_whether_it_reads_or_writes() {
    let f = parse(
        "[[operation]]\nname = \"r\"\nrole = \"read\"\nsql = \"SELECT 1\"\n\n[[operation]]\nname = \"w\"\nsql = \"SELECT 2\"\n",
    )
    .unwrap();
    let roles: Vec<_> = f.operations.iter().map(|o| o.role).collect();
    assert_eq!(
        roles,
        vec![crate::scenario::Role::Read, crate::scenario::Role::Write]
    );
    let e = parse("[[operation]]\nname = \"r\"\nrole = \"replica\"\nsql = \"SELECT 1\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("replica") && e.contains("read"), "{e}");
}

#[test]
fn operations_are_named_once_and_something_has_weight() {
    refused(
        &format!("{OK}{OK}"),
        5,
        &["operation `read` is defined twice"],
    );
    refused(
        &OK.replace("name = \"read\"", "name = \"Read Me\""),
        2,
        &["lowercase letters"],
    );
    refused(
        &OK.replace("name = \"read\"", "name = \"read\"\nweight = 0"),
        1,
        &["every operation has weight 0"],
    );
    let e = parse("name = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("no operations"), "{e}");
}

#[test]
fn a_missing_dialect_is_named_for_the_target() {
    let f = parse(&OK.replace(
        "sql = \"SELECT v FROM t WHERE id = :id\"",
        "sql = { mysql = \"SELECT v FROM t WHERE id = :id\" }",
    ))
    .unwrap();
    assert!(f.check_dialect(Driver::MySql).is_ok());
    let e = f.check_dialect(Driver::Postgres).unwrap_err();
    assert_eq!(e.line, Some(3));
    assert!(
        e.to_string()
            .contains("operation `read`, statement 1 has no SQL for postgres"),
        "{e}"
    );
}

#[test]
fn transactions_default_on_for_several_statements() {
    let f = parse("[[operation]]\nname = \"t\"\nretry = 3\nsql = [\"SELECT 1\", \"SELECT 2\"]\n")
        .unwrap();
    assert!(f.operations[0].transaction);
    assert_eq!(f.operations[0].retry, 3);
}
