//! Unit tests of the YAML 1.1 conversion: each scalar class, merges, keys and the limits.

use serde_json::{Value, json};

use super::*;

fn one(text: &str) -> Value {
    let mut docs = to_json_documents(text, &YamlLimits::default()).expect("converts");
    assert_eq!(docs.len(), 1, "one document");
    docs.remove(0)
}

fn scalar(text: &str) -> Value {
    one(&format!("v: {text}\n"))["v"].clone()
}

#[test]
fn octal_hex_binary_and_signed_integers_are_numbers() {
    for (text, want) in [
        ("0755", json!(493)),
        ("0o755", json!(493)),
        ("0O17", json!(15)),
        ("0x1F", json!(31)),
        ("0X1f", json!(31)),
        ("0b101", json!(5)),
        ("-0b11", json!(-3)),
        ("+1", json!(1)),
        ("-0", json!(0)),
        ("1_000", json!(1000)),
        ("1__0", json!(10)),
        ("+_1", json!(1)),
        ("0x_1F", json!(31)),
        ("08", json!(8)),
        ("-9223372036854775808", json!(i64::MIN)),
    ] {
        assert_eq!(scalar(text), want, "{text}");
    }
}

#[test]
fn yaml_1_1_booleans_in_every_case_go_yaml_accepts() {
    for text in [
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
    ] {
        assert_eq!(scalar(text), json!(true), "{text}");
    }
    for text in [
        "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
    ] {
        assert_eq!(scalar(text), json!(false), "{text}");
    }
    for text in ["yES", "oN", "tRUE", "nO"] {
        assert_eq!(scalar(text), json!(text), "{text}");
    }
}

#[test]
fn nulls() {
    for text in ["~", "null", "Null", "NULL", "", "!!null"] {
        assert_eq!(scalar(text), Value::Null, "{text:?}");
    }
    assert_eq!(scalar("nULL"), json!("nULL"));
}

#[test]
fn floats_and_numbers_beyond_64_bits() {
    assert_eq!(scalar("1e3"), json!(1000));
    assert_eq!(scalar(".5"), json!(0.5));
    assert_eq!(scalar(".5_0"), json!(0.5));
    assert_eq!(scalar("+.5"), json!(0.5));
    assert_eq!(scalar("1.5e+3"), json!(1500));
    assert_eq!(scalar("3.0e-7"), json!(3e-7));
    assert_eq!(scalar("1."), json!(1));
    // Past i64, kubectl's unstructured round trip gives a float.
    assert_eq!(
        scalar("9223372036854775808"),
        json!(9.223_372_036_854_776e18)
    );
    assert_eq!(
        scalar("18446744073709551616"),
        json!(1.844_674_407_370_955_2e19)
    );
    assert_eq!(
        scalar("-9223372036854775809"),
        json!(-9.223_372_036_854_776e18)
    );
    // Out of f64's range: Go's ParseFloat fails, so the text stays.
    assert_eq!(scalar("1e400"), json!("1e400"));
    assert_eq!(scalar("12e"), json!("12e"));
    assert_eq!(scalar("0x"), json!("0x"));
    assert_eq!(scalar("0o8"), json!("0o8"));
}

#[test]
fn infinity_and_nan_are_refused_as_json_has_no_such_numbers() {
    for text in [".inf", "-.Inf", "+.INF", ".nan", ".NaN"] {
        let error = to_json_documents(&format!("v: {text}\n"), &YamlLimits::default())
            .expect_err(text)
            .to_string();
        assert!(error.contains("infinity or NaN"), "{error}");
        assert!(error.contains("line 1"), "{error}");
    }
}

#[test]
fn strings_stay_strings() {
    for text in ["1:20", "1:20:30", "2001-12-14", "_1", "abc", "0755 x"] {
        assert_eq!(scalar(text), json!(text), "{text}");
    }
    for (text, want) in [
        ("\"0755\"", "0755"),
        ("'yes'", "yes"),
        ("\"~\"", "~"),
        ("!!str 12", "12"),
        ("!!str yes", "yes"),
        ("!foo 12", "12"),
        ("! 12", "12"),
        ("!!binary aGk=", "hi"),
        ("|\n  0755", "0755\n"),
        ("!!merge <<", "<<"),
        ("!!str", ""),
    ] {
        assert_eq!(scalar(text), json!(want), "{text}");
    }
}

#[test]
fn explicit_tags_resolve_or_are_refused() {
    assert_eq!(scalar("!!int \"12\""), json!(12));
    assert_eq!(scalar("!!int 0x10"), json!(16));
    assert_eq!(scalar("!!float 12"), json!(12));
    assert_eq!(scalar("!!bool yes"), json!(true));
    assert_eq!(scalar("!!timestamp 2001-12-14"), json!("2001-12-14"));
    for text in [
        "!!int abc",
        "!!int",
        "!!bool 1",
        "!!null 0",
        "!!float x",
        "!!binary ***",
    ] {
        let error = to_json_documents(&format!("v: {text}\n"), &YamlLimits::default())
            .expect_err(text)
            .to_string();
        assert!(!error.contains("abc") && !error.contains("***"), "{error}");
        assert!(error.contains(" at line "), "{error}");
    }
}

#[test]
fn keys_are_converted_as_sigs_k8s_io_yaml_does() {
    let doc =
        one("yes: 1\nn: 2\n0755: 3\n1.5: 4\n1e7: 5\n0.1: 6\n1e-5: 7\n123456.7: 8\n\"0755\": 9\n");
    assert_eq!(
        doc,
        json!({"true": 1, "false": 2, "493": 3, "1.5": 4, "1e+07": 5, "0.1": 6, "1e-05": 7,
               "123456.7": 8, "0755": 9})
    );
    for text in [
        "~: 1\n",
        "9223372036854775808: 1\n",
        "[1]: 2\n",
        "{a: 1}: 2\n",
    ] {
        let error = to_json_documents(text, &YamlLimits::default()).expect_err(text);
        assert!(matches!(error, YamlError::Unsupported { .. }), "{error}");
    }
    assert_eq!(
        one("a: 1\na: 2\n"),
        json!({"a": 2}),
        "the last duplicate wins"
    );
}

#[test]
fn merge_keys_apply_in_document_order_like_go_yaml_v2() {
    let doc = one(
        "base: &b {x: 1, p: 2}\nm: {<<: *b, p: 3}\nlate: {p: 0, <<: *b}\n\
         list: {<<: [{p: 1}, {p: 2, z: 3}]}\nquoted: {\"<<\": {a: 1}}\n",
    );
    assert_eq!(doc["m"], json!({"x": 1, "p": 3}));
    assert_eq!(
        doc["late"],
        json!({"x": 1, "p": 2}),
        "a later merge overrides, as v2"
    );
    assert_eq!(doc["list"], json!({"p": 1, "z": 3}), "earlier mappings win");
    assert_eq!(doc["quoted"], json!({"<<": {"a": 1}}));
    let error = to_json_documents("a: {<<: 1}\n", &YamlLimits::default()).expect_err("scalar");
    assert!(error.to_string().contains("merge key"), "{error}");
}

#[test]
fn aliases_replay_their_anchor_and_self_reference_is_refused() {
    assert_eq!(
        one("a: &x [1, 2]\nb: *x\n"),
        json!({"a": [1, 2], "b": [1, 2]})
    );
    let error = to_json_documents("a: &x [1, *x]\n", &YamlLimits::default()).expect_err("loop");
    assert!(error.to_string().contains("itself"), "{error}");
}

#[test]
fn streams_give_one_value_per_document() {
    let docs = to_json_documents("a: 1\n---\n---\nb: 2\n", &YamlLimits::default()).unwrap();
    assert_eq!(docs, vec![json!({"a": 1}), Value::Null, json!({"b": 2})]);
    let error = to_json_documents("a: [\n", &YamlLimits::default()).expect_err("syntax");
    assert!(matches!(error, YamlError::Syntax { .. }), "{error}");
    let error = to_json_documents("a: b\n@secret\n", &YamlLimits::default()).expect_err("syntax");
    assert_eq!(error.to_string(), "unexpected character at line 2 column 1");
}

/// Nine levels of ten aliases each: under 1 KiB of text, 10^9 scalars once expanded.
pub(crate) fn billion_laughs() -> String {
    let mut text = String::from(
        "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    for level in 1..=9 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    text
}

#[test]
fn a_billion_laughs_document_is_refused_quickly_naming_the_limit() {
    let text = billion_laughs();
    assert!(text.len() < 1024);
    let started = std::time::Instant::now();
    let error = to_json_documents(&text, &YamlLimits::default()).expect_err("bounded");
    assert!(started.elapsed() < crate::yaml::REFUSED_WITHIN);
    assert_eq!(
        error,
        YamlError::TooLarge {
            what: "nodes",
            limit: 1_000_000
        }
    );
    assert!(error.to_string().contains("1000000 nodes"), "{error}");
    // Long scalars replayed hit the byte limit first.
    let long = format!("a: &a \"{}\"\nb: [*a, *a, *a]\n", "x".repeat(1000));
    let limits = YamlLimits {
        max_scalar_bytes: 3000,
        ..YamlLimits::default()
    };
    let error = to_json_documents(&long, &limits).expect_err("bytes");
    assert!(error.to_string().contains("3000 bytes"), "{error}");
}

#[test]
fn nesting_is_bounded() {
    // Block mappings, one level per line (yaml-rust2 itself stops flow nesting at 255).
    let nested = |levels: usize| {
        let mut text = String::new();
        for level in 0..levels {
            text.push_str(&format!("{}k:\n", " ".repeat(level)));
        }
        text
    };
    let error = to_json_documents(&nested(258), &YamlLimits::default()).expect_err("deep");
    assert!(
        error.to_string().contains("256 levels of nesting"),
        "{error}"
    );
    to_json_documents(&nested(255), &YamlLimits::default()).expect("within the limit");
}
