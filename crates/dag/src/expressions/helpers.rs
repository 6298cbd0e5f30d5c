//! The helpers expressions may call (SPEC §5): `default`, `b64enc`, `b64dec`, `upper`, `lower`,
//! `trim`, `quote`, `urlencode`; and `imageDigest`, whose answers the caller provides (see
//! [`super::images`]).
//!
//! A helper given a missing value returns "missing" rather than failing, so that
//! `default (upper dep.outputs.KEY) "x"` falls back; outside `default`, missing values never
//! reach a helper (the expression waits for the key first). Helper errors describe the problem,
//! never the value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, JsonRender, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// Helper names and how many arguments each takes.
pub(crate) const HELPERS: &[(&str, usize)] = &[
    ("default", 2),
    ("b64enc", 1),
    ("b64dec", 1),
    ("upper", 1),
    ("lower", 1),
    ("trim", 1),
    ("quote", 1),
    ("urlencode", 1),
    (IMAGE_DIGEST, 1),
];

/// The helper pinning an image tag to its digest.
pub(crate) const IMAGE_DIGEST: &str = "imageDigest";

/// Where the Handlebars context holds the `imageDigest` answers (not a valid path root).
pub(crate) const IMAGES_KEY: &str = "@images";

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn register(registry: &mut Handlebars<'static>) {
    registry.register_helper("default", Box::new(DefaultHelper));
    registry.register_helper(IMAGE_DIGEST, Box::new(ImageDigestHelper));
    for &(name, _) in HELPERS[1..].iter().filter(|(n, _)| *n != IMAGE_DIGEST) {
        registry.register_helper(name, Box::new(StringHelper(name)));
    }
}

/// `default VALUE FALLBACK`: VALUE unless it is missing, null or empty.
struct DefaultHelper;

impl HelperDef for DefaultHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = h
            .param(0)
            .filter(|p| !p.is_value_missing())
            .map(|p| p.value());
        let fallback = h
            .param(1)
            .filter(|p| !p.is_value_missing())
            .map(|p| p.value());
        let chosen = match value {
            Some(v) if !is_empty(v) => Some(v),
            _ => fallback,
        };
        Ok(chosen.map_or(ScopedJson::Missing, |v| {
            ScopedJson::Derived(Value::String(v.render()))
        }))
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// `imageDigest "IMAGE"`: the answer the caller put in the context (missing until then).
struct ImageDigestHelper;

impl HelperDef for ImageDigestHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let Some(Value::String(image)) = h.param(0).map(|p| p.value()) else {
            return Ok(ScopedJson::Missing);
        };
        let pinned = super::parse_image(image)
            .ok()
            .and_then(|parsed| match &parsed.digest {
                Some(digest) => Some(parsed.pinned(digest)),
                None => ctx.data()[IMAGES_KEY][image.as_str()]
                    .as_str()
                    .map(str::to_owned),
            });
        Ok(pinned.map_or(ScopedJson::Missing, |p| {
            ScopedJson::Derived(Value::String(p))
        }))
    }
}

/// A helper from one string to another.
struct StringHelper(&'static str);

impl HelperDef for StringHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let Some(param) = h.param(0).filter(|p| !p.is_value_missing()) else {
            return Ok(ScopedJson::Missing);
        };
        let input = param.value().render();
        Ok(ScopedJson::Derived(Value::String(apply(self.0, &input)?)))
    }
}

/// The string helpers, by name. Also used by tests as the reference behaviour.
pub(crate) fn apply(helper: &str, input: &str) -> Result<String, RenderError> {
    Ok(match helper {
        "b64enc" => STANDARD.encode(input.as_bytes()),
        "b64dec" => {
            let bytes = STANDARD
                .decode(input.trim().as_bytes())
                .map_err(|_| failure("b64dec: the value is not valid base64"))?;
            String::from_utf8(bytes)
                .map_err(|_| failure("b64dec: the decoded value is not UTF-8 text"))?
        }
        "upper" => input.to_uppercase(),
        "lower" => input.to_lowercase(),
        "trim" => input.trim().to_owned(),
        // As Helm's `quote`: a double-quoted string with `"` and `\` escaped.
        "quote" => serde_json::Value::String(input.to_owned()).to_string(),
        "urlencode" => utf8_percent_encode(input, URL_COMPONENT).to_string(),
        other => return Err(failure(&format!("unknown helper {other}"))),
    })
}

fn failure(reason: &str) -> RenderError {
    RenderErrorReason::Other(reason.to_owned()).into()
}
