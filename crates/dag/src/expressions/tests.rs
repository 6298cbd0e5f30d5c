//! Unit and property tests of expression scanning, checking and substitution.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::testing::substitute_without_fast_path;
use super::*;
use upstart_failure::Classify;

fn outputs(pairs: &[(&str, &str)]) -> Outputs {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

fn context() -> ExpressionContext {
    let mut dependencies = BTreeMap::new();
    dependencies.insert(
        "postgres".to_owned(),
        outputs(&[
            ("POSTGRES_USER", "app"),
            ("POSTGRES_DB", "main"),
            ("PORT", ""),
        ]),
    );
    dependencies.insert(
        "my-environment-name-launch-darkly".to_owned(),
        outputs(&[("LD_SDK_KEY_PRICING", "sdk-123"), ("tls.crt", "CERT")]),
    );
    dependencies.insert("bugsnag".to_owned(), Outputs::new());
    ExpressionContext {
        dependencies,
        environment: Some(EnvironmentInfo {
            name: "pr-1234".to_owned(),
            namespace: "pr-1234-ns".to_owned(),
            variables: BTreeMap::from([("branch".to_owned(), "feature-x".to_owned())]),
        }),
        service: Some(ServiceInfo {
            name: "example-service".to_owned(),
        }),
        release: ReleaseInfo {
            name: "example-service-api".to_owned(),
            namespace: "pr-1234-ns".to_owned(),
        },
        images: BTreeMap::new(),
    }
}

fn substitute(values: Value) -> Result<Value, Error> {
    Expressions::new().substitute(values, "spec.values", &context())
}

fn one(s: &str) -> Result<String, Error> {
    substitute(json!({ "v": s }))
        .map(|v| v["v"].as_str().expect("a string stays a string").to_owned())
}

#[test]
fn a_path_to_an_output_is_replaced_by_its_value() {
    assert_eq!(
        one("postgres://<< postgres.outputs.POSTGRES_USER >>@db").unwrap(),
        "postgres://app@db"
    );
}

#[test]
fn names_containing_dashes_work_as_written() {
    assert_eq!(
        one("<< my-environment-name-launch-darkly.outputs.LD_SDK_KEY_PRICING >>").unwrap(),
        "sdk-123"
    );
}

#[test]
fn keys_with_dots_are_read_with_brackets() {
    assert_eq!(
        one("<< my-environment-name-launch-darkly.outputs.[tls.crt] >>").unwrap(),
        "CERT"
    );
}

#[test]
fn built_in_roots_resolve() {
    assert_eq!(
        one("<< environment.name >>/<< environment.namespace >>/<< environment.variables.branch >>/<< service.name >>/<< release.name >>/<< release.namespace >>")
            .unwrap(),
        "pr-1234/pr-1234-ns/feature-x/example-service/example-service-api/pr-1234-ns"
    );
}

#[test]
fn a_string_that_is_exactly_one_expression_stays_a_string() {
    let mut ctx = context();
    ctx.dependencies
        .insert("n".to_owned(), outputs(&[("PORT", "5432"), ("ON", "true")]));
    let out = Expressions::new()
        .substitute(
            json!({"port": "<< n.outputs.PORT >>", "on": "<< n.outputs.ON >>"}),
            "",
            &ctx,
        )
        .unwrap();
    assert_eq!(out, json!({"port": "5432", "on": "true"}));
}

#[test]
fn keys_are_never_touched() {
    let out = substitute(json!({"<< postgres.outputs.POSTGRES_USER >>": "x"})).unwrap();
    assert_eq!(out, json!({"<< postgres.outputs.POSTGRES_USER >>": "x"}));
}

#[test]
fn strings_in_lists_and_nested_maps_are_substituted_and_other_values_kept() {
    let out = substitute(json!({
        "a": [1, true, null, "<< postgres.outputs.POSTGRES_DB >>", {"b": "<< release.name >>"}],
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({"a": [1, true, null, "main", {"b": "example-service-api"}]})
    );
}

#[test]
fn handlebars_braces_pass_through_untouched() {
    let s = "{{ .Values.x }} {{ include \"a\" . }} << postgres.outputs.POSTGRES_DB >>";
    assert_eq!(
        one(s).unwrap(),
        "{{ .Values.x }} {{ include \"a\" . }} main"
    );
}

#[test]
fn an_escaped_marker_is_a_literal_marker() {
    assert_eq!(one(r"cat \<<EOF").unwrap(), "cat <<EOF");
    assert_eq!(
        one(r"\<< postgres.outputs.POSTGRES_DB >>").unwrap(),
        "<< postgres.outputs.POSTGRES_DB >>"
    );
}

#[test]
fn substituted_values_are_never_scanned_again() {
    let mut ctx = context();
    ctx.dependencies.insert(
        "tricky".to_owned(),
        outputs(&[("V", "<< postgres.outputs.POSTGRES_USER >> {{ .x }} \\<< }}")]),
    );
    let out = Expressions::new()
        .substitute(json!({"v": "<< tricky.outputs.V >>"}), "", &ctx)
        .unwrap();
    assert_eq!(
        out["v"],
        "<< postgres.outputs.POSTGRES_USER >> {{ .x }} \\<< }}"
    );
}

#[test]
fn values_are_not_html_escaped() {
    let mut ctx = context();
    ctx.dependencies
        .insert("p".to_owned(), outputs(&[("PW", "a&b<c>\"d'")]));
    let out = Expressions::new()
        .substitute(
            json!({"v": "<< p.outputs.PW >>", "w": "<< upper p.outputs.PW >>"}),
            "",
            &ctx,
        )
        .unwrap();
    assert_eq!(out, json!({"v": "a&b<c>\"d'", "w": "A&B<C>\"D'"}));
}

#[test]
fn helpers_transform_values() {
    assert_eq!(
        one("<< upper postgres.outputs.POSTGRES_USER >>").unwrap(),
        "APP"
    );
    assert_eq!(one("<< lower \"MiXeD\" >>").unwrap(), "mixed");
    assert_eq!(one("<< trim \"  x  \" >>").unwrap(), "x");
    assert_eq!(
        one("<< quote postgres.outputs.POSTGRES_USER >>").unwrap(),
        "\"app\""
    );
    assert_eq!(
        one("<< quote \"say \\\"hi\\\"\" >>").unwrap(),
        r#""say \"hi\"""#
    );
    assert_eq!(
        one("<< b64enc postgres.outputs.POSTGRES_USER >>").unwrap(),
        "YXBw"
    );
    assert_eq!(one("<< b64dec \"YXBw\" >>").unwrap(), "app");
    assert_eq!(
        one("<< urlencode \"a b&c/d~e\" >>").unwrap(),
        "a%20b%26c%2Fd~e"
    );
    assert_eq!(
        one("<< upper (b64dec (b64enc postgres.outputs.POSTGRES_DB)) >>").unwrap(),
        "MAIN"
    );
}

#[test]
fn default_falls_back_when_the_key_is_missing_or_empty() {
    assert_eq!(
        one("<< default postgres.outputs.MISSING \"5432\" >>").unwrap(),
        "5432"
    );
    assert_eq!(
        one("<< default postgres.outputs.PORT \"5432\" >>").unwrap(),
        "5432"
    );
    assert_eq!(
        one("<< default postgres.outputs.POSTGRES_DB \"x\" >>").unwrap(),
        "main"
    );
    assert_eq!(one("<< default bugsnag.outputs.KEY 42 >>").unwrap(), "42");
    assert_eq!(
        one("<< default (upper postgres.outputs.MISSING) \"none\" >>").unwrap(),
        "none"
    );
}

#[test]
fn a_missing_output_key_is_a_wait_that_names_missing_and_existing_keys() {
    let err = one("postgres://<< postgres.outputs.POSTGRES_PASSWORD >>").unwrap_err();
    assert!(err.is_wait() && !err.needs_spec_change(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "spec.values.v: << postgres.outputs.POSTGRES_PASSWORD >> at column 12: output key POSTGRES_PASSWORD of postgres is missing (it has: PORT, POSTGRES_DB, POSTGRES_USER)"
    );
}

#[test]
fn a_wait_lists_every_missing_key_of_the_expression() {
    let err = one("<< default (upper postgres.outputs.A) postgres.outputs.B >>").unwrap_err();
    let Error::MissingOutput { missing, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        missing,
        &["B".to_owned()],
        "A is optional under default, B is not"
    );
}

#[test]
fn an_unknown_root_is_a_spec_error_naming_the_known_roots() {
    let err = one("x << redis.outputs.URL >>").unwrap_err();
    assert!(err.needs_spec_change() && !err.is_wait());
    assert_eq!(
        err.to_string(),
        "spec.values.v: << redis.outputs.URL >> at column 3: unknown name redis (known: bugsnag, my-environment-name-launch-darkly, postgres, environment, service, release)"
    );
}

#[test]
fn syntax_errors_are_spec_errors_with_a_position() {
    for bad in [
        "a << postgres.outputs. >>",
        "a << (upper >>",
        "a << postgres.outputs.X",
        "a <<>>",
        "a << {{x}} >>",
        "a << #if x >>",
    ] {
        let err = one(bad).unwrap_err();
        assert!(err.needs_spec_change(), "{bad}: {err:?}");
        let Error::ExpressionSyntax { at, .. } = &err else {
            panic!("{bad}: {err:?}")
        };
        assert_eq!((at.column, at.path.as_str()), (3, "spec.values.v"), "{bad}");
    }
}

#[test]
fn malformed_references_are_spec_errors_saying_what_is_accepted() {
    let cases = [
        ("<< postgres.PORT >>", "postgres.outputs.KEY"),
        ("<< postgres.outputs >>", "postgres.outputs.KEY"),
        ("<< environment.foo >>", "name, namespace and variables.KEY"),
        ("<< release.uid >>", "name and namespace"),
        ("<< shout postgres.outputs.PORT >>", "unknown helper shout"),
        ("<< upper a.b c >>", "upper takes one argument"),
        (
            "<< default postgres.outputs.PORT >>",
            "default takes two arguments",
        ),
        (
            "<< lookup postgres.outputs \"PORT\" >>",
            "unknown helper lookup",
        ),
        ("<< upper x=postgres.outputs.PORT >>", "named"),
        ("<< this >>", "this"),
        ("<< @root.postgres.outputs.PORT >>", "@root"),
    ];
    for (expression, expected) in cases {
        let err = one(expression).unwrap_err();
        assert!(err.needs_spec_change(), "{expression}: {err:?}");
        assert!(err.to_string().contains(expected), "{expression}: {err}");
    }
}

#[test]
fn an_undefined_environment_variable_is_a_spec_error() {
    let err = one("<< environment.variables.nope >>").unwrap_err();
    assert!(err.needs_spec_change());
    assert!(
        err.to_string()
            .contains("environment variable nope is not defined (defined: branch)"),
        "{err}"
    );
}

#[test]
fn roots_of_a_missing_environment_or_service_are_unknown() {
    let mut ctx = context();
    ctx.environment = None;
    ctx.service = None;
    let engine = Expressions::new();
    for expression in ["<< environment.name >>", "<< service.name >>"] {
        let err = engine
            .substitute(json!({ "v": expression }), "", &ctx)
            .unwrap_err();
        assert!(matches!(err, Error::UnknownRoot { .. }), "{err:?}");
    }
}

#[test]
fn a_helper_failure_names_the_problem_but_not_the_value() {
    let mut ctx = context();
    ctx.dependencies
        .insert("s".to_owned(), outputs(&[("K", "not base64 !!! hunter2")]));
    let err = Expressions::new()
        .substitute(json!({"v": "<< b64dec s.outputs.K >>"}), "", &ctx)
        .unwrap_err();
    assert!(!err.needs_spec_change() && !err.is_wait());
    assert_eq!(
        err.to_string(),
        "v: << b64dec s.outputs.K >> at column 1: b64dec: the value is not valid base64"
    );
}

#[test]
fn spec_errors_win_over_waits_anywhere_in_the_document() {
    let err = substitute(json!({"a": "<< postgres.outputs.NOPE >>", "b": "<< nope.outputs.X >>"}))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownRoot { .. }), "{err:?}");
}

#[test]
fn error_paths_name_list_indexes_and_quote_unusual_keys() {
    let err = substitute(json!({"env": [{"value": "<< postgres.outputs.X >>"}], "a.b": {"c d": "<< nope.outputs.X >>"}}))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownRoot { .. }), "{err:?}");
    assert_eq!(
        err.location().map(|l| l.path.as_str()),
        Some(r#"spec.values["a.b"]["c d"]"#)
    );
    let err = substitute(json!({"env": [{"value": "<< postgres.outputs.X >>"}]})).unwrap_err();
    assert!(err.is_wait(), "{err:?}");
    assert_eq!(
        err.location().map(|l| l.path.as_str()),
        Some("spec.values.env[0].value")
    );
}

#[test]
fn the_same_expression_twice_is_compiled_once_and_resolved_twice() {
    let engine = Expressions::new();
    let ctx = context();
    let mut run = Run::new(&engine, Roots::of_context(&ctx), "");
    let first = run.compiled("upper postgres.outputs.POSTGRES_DB");
    let second = run.compiled("upper postgres.outputs.POSTGRES_DB");
    assert!(Rc::ptr_eq(&first, &second));
    let out = engine
        .substitute(
            json!([
                "<< upper postgres.outputs.POSTGRES_DB >>",
                "<< upper postgres.outputs.POSTGRES_DB >>"
            ]),
            "",
            &ctx,
        )
        .unwrap();
    assert_eq!(out, json!(["MAIN", "MAIN"]));
}

#[test]
fn offline_checks_report_consumed_outputs_and_every_problem() {
    let engine = Expressions::new();
    let ctx = OfflineContext {
        aliases: ["postgres".to_owned(), "redis".to_owned()].into(),
        environment: true,
        service: false,
    };
    let report = engine.check_offline(
        &json!({
            "a": "<< postgres.outputs.USER >>:<< default redis.outputs.PORT \"6379\" >>",
            "b": ["<< environment.variables.anything >>", "<< service.name >>", "<< bugsnag.outputs.KEY >>"],
            "c": "<< postgres.outputs. >>",
        }),
        "spec.values",
        &ctx,
    );
    let consumed: Vec<(String, String)> = report
        .consumes
        .iter()
        .map(|r| (r.alias.clone(), r.key.clone()))
        .collect();
    assert_eq!(
        consumed,
        [
            ("postgres".to_owned(), "USER".to_owned()),
            ("redis".to_owned(), "PORT".to_owned())
        ]
    );
    let messages: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(report.errors.len(), 3, "{messages:#?}");
    assert!(
        messages[0]
            .starts_with("spec.values.b[1]: << service.name >> at column 1: unknown name service"),
        "{messages:#?}"
    );
    assert!(
        messages[1].contains("unknown name bugsnag (known: postgres, redis, environment, release)"),
        "{messages:#?}"
    );
    assert!(matches!(report.errors[2], Error::ExpressionSyntax { .. }));
}

#[test]
fn reserved_and_duplicate_aliases_are_reported() {
    let dependency = |name: &str, alias: Option<&str>| Dependency {
        name: name.to_owned(),
        kind: None,
        alias: alias.map(str::to_owned),
    };
    let errors = check_aliases(
        "svc/app",
        &[
            dependency("a", Some("db")),
            dependency("b", Some("db")),
            dependency("release", None),
            dependency("c", None),
        ],
    );
    assert_eq!(
        errors,
        vec![
            Error::DuplicateAlias {
                release: "svc/app".to_owned(),
                alias: "db".to_owned()
            },
            Error::ReservedAlias {
                release: "svc/app".to_owned(),
                alias: "release".to_owned()
            },
        ]
    );
}

#[test]
fn a_release_spec_is_checked_offline_for_aliases_and_expressions() {
    let spec = HelmReleaseSpec {
        chart: "c/app".to_owned(),
        dependencies: vec![
            Dependency {
                name: "example-postgres".to_owned(),
                kind: None,
                alias: Some("db".to_owned()),
            },
            Dependency {
                name: "service".to_owned(),
                kind: None,
                alias: None,
            },
        ],
        values: Some(
            json!({"url": "<< db.outputs.URL >>", "bad": "<< example-postgres.outputs.URL >>"}),
        ),
        ..Default::default()
    };
    let report = Expressions::new().check_release_offline("svc/app", &spec, true, true);
    let messages: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].contains("svc/app: dependency alias service is reserved"),
        "{messages:#?}"
    );
    assert!(messages[1].starts_with("spec.values.bad: << example-postgres.outputs.URL >> at column 1: unknown name example-postgres"), "{messages:#?}");
    assert_eq!(report.consumes.len(), 1);
}

// ---- properties ----

/// Output values: any text, including markers and braces.
fn output_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,24}",
        Just("<< postgres.outputs.POSTGRES_USER >>".to_owned()),
        Just("{{ .Values.x }}".to_owned()),
        Just("\\<< >> }}".to_owned()),
        "\\PC{0,12}",
    ]
}

/// Names as Secrets allow them for keys, and as release keys allow them for aliases.
fn key_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_-]{0,12}"
}

fn alias_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}[a-z0-9]"
        .prop_filter("not reserved", |a| !RESERVED_ROOTS.contains(&a.as_str()))
}

fn random_context() -> impl Strategy<Value = ExpressionContext> {
    prop::collection::btree_map(
        alias_name(),
        prop::collection::btree_map(key_name(), output_value(), 0..5),
        1..4,
    )
    .prop_map(|deps| ExpressionContext {
        dependencies: deps
            .into_iter()
            .map(|(a, o)| (a, o.into_iter().collect()))
            .collect(),
        environment: Some(EnvironmentInfo {
            name: "env".to_owned(),
            namespace: "ns".to_owned(),
            variables: BTreeMap::from([("v".to_owned(), "<<x>>".to_owned())]),
        }),
        service: Some(ServiceInfo {
            name: "svc".to_owned(),
        }),
        release: ReleaseInfo {
            name: "rel".to_owned(),
            namespace: "ns".to_owned(),
        },
        images: BTreeMap::new(),
    })
}

/// A document whose strings reference outputs that exist, mixed with literal text.
fn document_for(ctx: &ExpressionContext, picks: &[(usize, String)]) -> Value {
    let references: Vec<String> = ctx
        .dependencies
        .iter()
        .flat_map(|(alias, outputs)| outputs.keys().map(move |k| format!("{alias}.outputs.{k}")))
        .chain([
            "environment.variables.v".to_owned(),
            "release.name".to_owned(),
            "service.name".to_owned(),
        ])
        .collect();
    let mut map = Map::new();
    for (i, (pick, text)) in picks.iter().enumerate() {
        let reference = &references[pick % references.len()];
        let expression = match i % 4 {
            0 => format!("<< {reference} >>"),
            1 => format!("<< upper {reference} >>"),
            2 => format!("<< default {reference} \"fallback\" >>"),
            _ => format!("<<{reference}>>"),
        };
        map.insert(
            format!("k{i}"),
            Value::String(format!("{text}{expression}{text}")),
        );
    }
    Value::Object(map)
}

/// A random expression over the context: references (present or missing), literals, and
/// nested helper calls.
fn expression_in(ctx: &ExpressionContext) -> BoxedStrategy<String> {
    let mut references: Vec<String> = ctx
        .dependencies
        .iter()
        .flat_map(|(alias, outputs)| outputs.keys().map(move |k| format!("{alias}.outputs.{k}")))
        .chain([
            "environment.variables.v".to_owned(),
            "release.name".to_owned(),
        ])
        .collect();
    let first_alias = ctx.dependencies.keys().next().cloned().unwrap_or_default();
    references.push(format!("{first_alias}.outputs.NOT_PUBLISHED"));
    let leaf = prop_oneof![
        3 => prop::sample::select(references),
        1 => prop::sample::select(vec![
            "\"lit\"", "\"\"", "42", "1.50", "null", "true", "\"YXBw\"", "\"a b&c/<d>\"", "'single'",
        ])
        .prop_map(str::to_owned),
    ];
    let helpers = vec![
        "upper",
        "lower",
        "trim",
        "quote",
        "b64enc",
        "b64dec",
        "urlencode",
    ];
    let tree = leaf.prop_recursive(3, 12, 2, move |inner| {
        prop_oneof![
            (prop::sample::select(helpers.clone()), inner.clone())
                .prop_map(|(h, x)| format!("({h} {x})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("(default {a} {b})")),
        ]
    });
    tree.prop_map(|e| {
        e.strip_prefix('(')
            .and_then(|e| e.strip_suffix(')'))
            .map_or(e.clone(), str::to_owned)
    })
    .boxed()
}

proptest! {
    #[test]
    fn direct_evaluation_and_handlebars_agree_on_any_expression(
        (ctx, expressions) in random_context().prop_flat_map(|ctx| {
            let expressions = prop::collection::vec(expression_in(&ctx), 1..6);
            (Just(ctx), expressions)
        }),
    ) {
        let engine = Expressions::new();
        for expression in &expressions {
            let document = json!({ "v": format!("x << {expression} >> y") });
            let direct = engine.substitute(document.clone(), "", &ctx);
            let rendered = substitute_without_fast_path(&engine, document, &ctx);
            prop_assert_eq!(direct, rendered, "{}", expression);
        }
    }

    #[test]
    fn fast_path_and_handlebars_give_the_same_text(
        ctx in random_context(),
        picks in prop::collection::vec((any::<usize>(), "[a-z :/@]{0,6}"), 1..12),
    ) {
        let engine = Expressions::new();
        let document = document_for(&ctx, &picks);
        let fast = engine.substitute(document.clone(), "", &ctx);
        let slow = substitute_without_fast_path(&engine, document, &ctx);
        prop_assert_eq!(fast, slow);
    }

    #[test]
    fn substitution_never_rescans_a_substituted_value(ctx in random_context()) {
        // Each expression is replaced by exactly its output: the result is the plain
        // concatenation, whatever markers the values hold.
        let engine = Expressions::new();
        for (alias, outputs) in &ctx.dependencies {
            for (key, value) in outputs.iter() {
                let document = json!({ "v": format!("[<< {alias}.outputs.{key} >>]") });
                let out = engine.substitute(document, "", &ctx).expect("the key exists");
                let expected = format!("[{value}]");
                prop_assert_eq!(out["v"].as_str(), Some(expected.as_str()));
            }
        }
    }

    #[test]
    fn no_output_value_ever_appears_in_an_error(
        secret in "[A-Za-z0-9]{12,20}",
        expression in prop_oneof![
            Just("<< b64dec s.outputs.K >>"),
            Just("<< s.outputs.MISSING >>"),
            Just("<< nope.outputs.K >>"),
            Just("<< s.outputs.K"),
            Just("<< upper s.outputs >>"),
            Just("<< default s.outputs.K >>"),
            Just("<< b64dec (upper s.outputs.K) >>"),
        ],
    ) {
        let mut ctx = random_context_fixed();
        // A value that is not base64 (the `!`), so b64dec fails on it.
        ctx.dependencies.insert("s".to_owned(), outputs(&[("K", &format!("{secret}!"))]));
        let engine = Expressions::new();
        let err = engine.substitute(json!({"v": expression, "w": [expression]}), "spec.values", &ctx).unwrap_err();
        prop_assert!(!err.to_string().contains(&secret));
        let debug = format!("{:?}", err);
        prop_assert!(!debug.contains(&secret));
    }

    #[test]
    fn any_secret_key_can_be_read_with_brackets_and_plain_keys_without(
        key in "[-._a-zA-Z0-9]{1,16}",
        value in "[ -~]{0,16}",
    ) {
        let mut ctx = random_context_fixed();
        ctx.dependencies.insert("dep".to_owned(), outputs(&[(&key, &value)]));
        let engine = Expressions::new();
        let out = engine.substitute(json!({"v": format!("<< dep.outputs.[{key}] >>")}), "", &ctx).unwrap();
        prop_assert_eq!(out["v"].as_str(), Some(value.as_str()));
        // Without brackets, a key without dots (and not a Handlebars keyword) reads the same.
        if !key.contains('.') && !["this", "true", "false", "null"].contains(&key.as_str()) {
            let out = engine.substitute(json!({"v": format!("<< dep.outputs.{key} >>")}), "", &ctx).unwrap();
            prop_assert_eq!(out["v"].as_str(), Some(value.as_str()));
        }
    }

    #[test]
    fn strings_without_markers_are_unchanged(text in "[^<]{0,40}") {
        let out = Expressions::new().substitute(json!({"v": text.clone()}), "", &random_context_fixed()).unwrap();
        prop_assert_eq!(out["v"].as_str(), Some(text.as_str()));
    }
}

fn random_context_fixed() -> ExpressionContext {
    context()
}

#[test]
fn substitution_output_is_capped_before_a_huge_document_is_built() {
    // 1000 references to a 1 MiB output would build about 1 GB.
    let mut context = context();
    let big = "x".repeat(1024 * 1024);
    context
        .dependencies
        .insert("blob".to_owned(), outputs(&[("DATA", big.as_str())]));
    let values = json!({"copies": vec!["<< blob.outputs.DATA >>"; 1000]});
    let started = std::time::Instant::now();
    let error = Expressions::new()
        .substitute(values, "spec.values", &context)
        .expect_err("capped");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        matches!(error, Error::SubstitutionTooLarge { limit, .. } if limit == DEFAULT_MAX_OUTPUT_BYTES),
        "{error}"
    );
    let text = error.to_string();
    assert!(text.contains(&context.release.name), "{text}");
    assert!(text.contains("spec.values"), "{text}");
    assert!(text.contains("16777216 bytes"), "{text}");
    assert!(!text.contains("xxx"), "{text}");
    assert!(error.needs_spec_change());
    assert_eq!(error.reason(), "SubstitutionTooLarge");

    // The cap is configurable and counts only what expressions write.
    let small = Expressions::new().with_max_output_bytes(10);
    let ok = small
        .substitute(
            json!({"a": "a long literal text << postgres.outputs.POSTGRES_USER >>"}),
            "spec.values",
            &context,
        )
        .expect("3 bytes written");
    assert_eq!(ok, json!({"a": "a long literal text app"}));
    let error = small
        .substitute(
            json!({"a": vec!["<< postgres.outputs.POSTGRES_USER >>"; 4]}),
            "spec.values",
            &context,
        )
        .expect_err("12 bytes written");
    assert!(error.to_string().contains("more than 10 bytes"), "{error}");
}

#[test]
fn image_digest_writes_the_pinned_reference_the_caller_resolved() {
    let digest = format!("sha256:{}", "5e".repeat(32));
    let mut context = context();
    let values = json!({"image": "<< imageDigest \"127.0.0.1:5000/team/api:1.4\" >>"});
    let wanted = Expressions::new().images(&values, &context);
    assert_eq!(
        wanted.into_iter().collect::<Vec<_>>(),
        ["127.0.0.1:5000/team/api:1.4"]
    );
    context.images.insert(
        "127.0.0.1:5000/team/api:1.4".to_owned(),
        format!("127.0.0.1:5000/team/api@{digest}"),
    );
    assert!(Expressions::new().images(&values, &context).is_empty());
    let out = Expressions::new()
        .substitute(values.clone(), "spec.values", &context)
        .unwrap();
    assert_eq!(out["image"], format!("127.0.0.1:5000/team/api@{digest}"));
    // The Handlebars reference behaviour agrees.
    let slow = super::testing::substitute_without_fast_path(&Expressions::new(), values, &context)
        .unwrap();
    assert_eq!(slow["image"], out["image"]);
}

#[test]
fn an_image_not_resolved_yet_is_a_wait_naming_the_image() {
    let values = json!({"image": "<< imageDigest \"registry.example.com/api:1\" >>"});
    let error = Expressions::new()
        .substitute(values, "spec.values", &context())
        .unwrap_err();
    assert!(error.is_wait(), "{error}");
    assert_eq!(error.reason(), crate::reasons::IMAGE_DIGEST_UNRESOLVED);
    assert!(
        error.to_string().contains("registry.example.com/api:1"),
        "{error}"
    );
}

#[test]
fn an_image_already_pinned_by_digest_needs_no_resolution() {
    let digest = format!("sha256:{}", "5e".repeat(32));
    let values =
        json!({"image": format!("<< imageDigest \"registry.example.com/api:1@{digest}\" >>")});
    assert!(Expressions::new().images(&values, &context()).is_empty());
    let out = Expressions::new()
        .substitute(values, "spec.values", &context())
        .unwrap();
    assert_eq!(out["image"], format!("registry.example.com/api@{digest}"));
}

#[test]
fn image_digest_is_checked_offline_with_the_form_to_write() {
    let offline = OfflineContext::default();
    let good = json!({"image": "<< imageDigest \"registry.example.com/api:1\" >>"});
    assert!(
        Expressions::new()
            .check_offline(&good, "spec.values", &offline)
            .is_valid()
    );
    for (bad, says) in [
        ("<< imageDigest \"nginx:1\" >>", "write the registry out"),
        ("<< imageDigest release.name >>", "string literal"),
        (
            "<< imageDigest \"registry.example.com/api\" >>",
            "names no tag",
        ),
    ] {
        let report =
            Expressions::new().check_offline(&json!({ "image": bad }), "spec.values", &offline);
        let error = &report.errors[0];
        assert!(error.needs_spec_change(), "{bad}: {error}");
        assert!(error.to_string().contains(says), "{bad}: {error}");
    }
}
