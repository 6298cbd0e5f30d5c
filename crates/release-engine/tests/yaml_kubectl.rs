//! The YAML conversion against its oracle, the pinned kubectl: generated scalars, as values and
//! as keys, are batched into one schemaless object per kubectl run
//! (`kubectl annotate --local -o json`, which needs no server) and compared field by field.

use std::process::Command;

use proptest::prelude::*;
use serde_json::{Map, Value};
use upstart_release_engine::yaml::{YamlLimits, to_json_documents};

/// What kubectl makes of `text` (a whole file), or its error.
fn kubectl(text: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("object.yaml");
    std::fs::write(&file, text).expect("write");
    // An empty kubeconfig: nothing from this machine's configuration is read.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "").expect("write");
    let output = Command::new(upstart_test_support::kubectl())
        .args(["annotate", "--local", "-o", "json", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("-f")
        .arg(&file)
        .arg("oracle=kubectl")
        .output()
        .expect("kubectl runs");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).expect("kubectl prints JSON"))
}

fn object(fields: &str) -> String {
    format!(
        "apiVersion: oracle.upstart.dev/v1\nkind: Scalars\nmetadata:\n  name: s\ndata:\n{fields}"
    )
}

/// Numbers compare by integer-ness (kubectl's JSON may parse as u64 where ours is the same
/// float) and by value; floats within two ULPs, as kubectl's own JSON decoding of large
/// exponents (`5e+32` read back as `5.0000000000000004e+32`) is that far from exact.
fn same(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) => {
            let (x, y) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            a.is_f64() == (b.is_f64() || b.as_i64().is_none())
                && match (a.as_i64(), b.as_i64()) {
                    (Some(i), Some(j)) => i == j,
                    _ => (x - y).abs() <= 2.0 * f64::EPSILON * x.abs().max(y.abs()),
                }
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| same(v, w))
        }
        _ => ours == theirs,
    }
}

/// Checks every scalar against kubectl: those we convert go in one batch (as values and as
/// keys); those we refuse must be refused by kubectl too (a few, one run each).
fn check(scalars: &[String]) {
    let mut fields = String::new();
    let mut refused = Vec::new();
    for (i, scalar) in scalars.iter().enumerate() {
        let ours = to_json_documents(&object(&format!("  v: {scalar}\n")), &YamlLimits::default());
        match ours {
            Ok(_) => fields.push_str(&format!("  v{i}: {scalar}\n")),
            Err(_) => refused.push(format!("  v: {scalar}\n")),
        }
        let key = to_json_documents(
            &object(&format!("  k:\n    {scalar}: 0\n")),
            &YamlLimits::default(),
        );
        match key {
            Ok(_) => fields.push_str(&format!("  k{i}:\n    {scalar}: 0\n")),
            Err(_) => refused.push(format!("  k:\n    {scalar}: 0\n")),
        }
    }
    let text = object(&fields);
    let ours =
        to_json_documents(&text, &YamlLimits::default()).expect("converts")[0]["data"].clone();
    let theirs =
        kubectl(&text).unwrap_or_else(|e| panic!("kubectl refused\n{text}\n{e}"))["data"].clone();
    for (field, value) in ours.as_object().expect("data") {
        let line = fields
            .lines()
            .position(|l| l.starts_with(&format!("  {field}:")))
            .map(|i| {
                fields
                    .lines()
                    .skip(i)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default();
        assert!(
            same(value, &theirs[field]),
            "{line}: ours {value}, kubectl {}",
            theirs[field]
        );
    }
    assert_eq!(
        ours.as_object().map(Map::len),
        theirs.as_object().map(Map::len)
    );
    for fields in refused.iter().take(16) {
        assert!(
            kubectl(&object(fields)).is_err(),
            "we refuse what kubectl accepts: {fields}"
        );
    }
}

fn scalar() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "yEs",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "nO",
        "on",
        "On",
        "ON",
        "oN",
        "off",
        "Off",
        "OFF",
        "true",
        "True",
        "TRUE",
        "tRUE",
        "false",
        "False",
        "FALSE",
        "~",
        "null",
        "Null",
        "NULL",
        "nULL",
        ".inf",
        ".Inf",
        ".INF",
        "-.inf",
        "+.inf",
        ".nan",
        ".NaN",
        ".NAN",
        "<<",
        "0x",
        "0o",
        "0b",
        "+",
        "1:20",
        "1:20:30",
        "2001-12-14",
        "0755",
        "0o755",
        "!!str 12",
        "!!int 0x10",
        "!!float 12",
        "!!bool yes",
        "!!null ~",
        "!foo 12",
        "! 12",
    ])
    .prop_map(str::to_owned);
    let numeric = proptest::string::string_regex(
        "[-+]?(0[xXoObB])?[0-9a-fA-F_]{1,22}(\\.[0-9_]{0,5})?([eE][-+]?[0-9]{1,3})?",
    )
    .expect("regex");
    let dotted =
        proptest::string::string_regex("[-+]?\\.[0-9_]{1,4}([eE][-+]?[0-9]{0,3})?").expect("regex");
    let digits = proptest::string::string_regex("[-+]?[0-9]{1,25}").expect("regex");
    let dates =
        proptest::string::string_regex("[0-9]{1,4}[:-][0-9]{1,2}([:-][0-9]{1,2})?").expect("regex");
    let base = prop_oneof![words, numeric, dotted, digits, dates];
    (base, 0..6u8).prop_map(|(text, wrap)| match wrap {
        0 if !text.starts_with('!') => format!("\"{text}\""),
        1 if !text.starts_with('!') => format!("'{text}'"),
        2 if !text.starts_with('!') => format!("!!int {text}"),
        _ => text,
    })
}

#[test]
fn every_class_of_scalar_converts_as_kubectl_converts_it() {
    let fixed = [
        "0755",
        "0o755",
        "0O17",
        "0x1F",
        "0b101",
        "-0b11",
        "+0b1",
        "+1",
        "-0",
        "-0.0",
        "1_000",
        "1__0",
        "+_1",
        "_1",
        "0x_1F",
        "08",
        "09.5",
        "1:20",
        "2001-12-14",
        "1e3",
        ".5",
        ".5_0",
        "+.5",
        "1.",
        "1e21",
        "1e-400",
        "1e400",
        "0.0000001",
        "123456789012345678901234",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "0xFFFFFFFFFFFFFFFF",
        "\"0755\"",
        "'yes'",
        "!!str yes",
        "!!int \"12\"",
        "!!float 12",
        "!!binary aGk=",
        "!!timestamp 2001-12-14",
        "!!null",
        "!!str",
        "!!merge <<",
        "1.5",
        "0.1",
        "1e7",
        "1e-5",
        "123456.7",
        "yes",
        "n",
        "~",
        "",
        "Null",
        ".inf",
        ".nan",
        "!!int abc",
        "!!int",
    ];
    check(&fixed.map(str::to_owned));
}

#[test]
fn merge_keys_and_aliases_convert_as_kubectl_converts_them() {
    let fields = "  base: &b {x: 1, p: 2}\n  m: {<<: *b, p: 3}\n  late: {p: 0, <<: *b}\n  \
                  list: {<<: [{p: 1}, *b]}\n  alias: *b\n  quoted: {\"<<\": {a: 1}}\n";
    let text = object(fields);
    let ours = to_json_documents(&text, &YamlLimits::default()).expect("converts");
    let theirs = kubectl(&text).expect("kubectl converts");
    assert!(
        same(&ours[0]["data"], &theirs["data"]),
        "ours {} kubectl {}",
        ours[0]["data"],
        theirs["data"]
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_scalars_convert_as_kubectl_converts_them(
        scalars in prop::collection::vec(scalar(), 150)
    ) {
        check(&scalars);
    }
}
