//! The fuzzing entry point of expressions (fuzz/fuzz_targets/expressions.rs), also replayed over
//! the committed corpus by e2e/tests/fuzz_corpus.rs: any input must end in a value or an error,
//! within the output cap, with the fast path and Handlebars agreeing and no output value in an
//! error.

use serde_json::{Value, json};

use crate::expressions::testing::substitute_without_fast_path;
use crate::{
    EnvironmentInfo, ExpressionContext, Expressions, OfflineContext, Outputs, ReleaseInfo,
    ServiceInfo,
};

/// The output cap of the fuzzed engine: small, so that amplification is found quickly.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// An output value no input should see in an error.
const SECRET: &str = "fuzz-s3cret-output-value";

/// One values document (a JSON document when `data` parses as one, else a map holding `data`
/// as one string) substituted and checked offline against a fixed context.
pub fn expressions(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let document = match serde_json::from_slice::<Value>(data) {
        Ok(value @ Value::Object(_)) => value,
        _ => json!({ "v": text, "list": [text, {"nested": text}] }),
    };
    let engine = Expressions::new().with_max_output_bytes(MAX_OUTPUT_BYTES);
    let context = context();

    let offline = OfflineContext {
        aliases: context.dependencies.keys().cloned().collect(),
        environment: true,
        service: true,
    };
    let report = engine.check_offline(&document, "spec.values", &offline);
    for error in &report.errors {
        assert_no_secret(&text, &error.to_string());
    }

    let fast = engine.substitute(document.clone(), "spec.values", &context);
    let slow = substitute_without_fast_path(&engine, document.clone(), &context);
    match (&fast, &slow) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the fast path and Handlebars disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("the fast path and Handlebars disagree on success: {fast:?} / {slow:?}"),
    }
    match fast {
        Ok(out) => {
            let written = string_bytes(&out);
            let input = string_bytes(&document);
            assert!(
                written <= input + MAX_OUTPUT_BYTES,
                "substitution wrote {written} bytes from {input} bytes of input, past the cap"
            );
        }
        Err(error) => assert_no_secret(&text, &error.to_string()),
    }
}

fn context() -> ExpressionContext {
    let mut db = Outputs::new();
    db.insert("USER", "app");
    db.insert("PASSWORD", SECRET);
    db.insert("EMPTY", "");
    db.insert("B64", "aGVsbG8=");
    db.insert("BIG", "x".repeat(4096));
    let mut cache = Outputs::new();
    cache.insert("URL", "redis://cache:6379/0?a=b&c=<<d>>");
    let mut context = ExpressionContext::default();
    context.dependencies.insert("db".into(), db);
    context.dependencies.insert("cache".into(), cache);
    context.dependencies.insert("late".into(), Outputs::new());
    context.environment = Some(EnvironmentInfo {
        name: "pr-1".into(),
        namespace: "env-pr-1".into(),
        variables: [("REGION".to_owned(), "eu".to_owned())].into(),
    });
    context.service = Some(ServiceInfo {
        name: "shop".into(),
    });
    context.release = ReleaseInfo {
        name: "shop-api".into(),
        namespace: "env-pr-1".into(),
    };
    context
}

/// Bytes of every string of a document (keys included), as the output cap counts them.
fn string_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(string_bytes).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + string_bytes(v)).sum(),
        _ => 0,
    }
}

fn assert_no_secret(input: &str, message: &str) {
    if !input.contains(SECRET) {
        assert!(
            !message.contains(SECRET),
            "an error quotes an output value: {message}"
        );
    }
}
