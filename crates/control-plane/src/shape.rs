//! The form of a resource answer, negotiated once per request from its `Accept` header as the
//! apiserver does: the objects themselves, a Table (`kubectl get`), or their metadata only
//! (`PartialObjectMetadata`, what metadata-only watches and informers ask for).

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::meta;
use crate::registry::ResourceType;
use crate::table::{self, Include};

/// The group of the kinds an answer may be transformed into.
const META_GROUP: &str = "meta.k8s.io";

/// The media types served, `(type, subtype)`, in the apiserver's order (the first answers a
/// wildcard). Every answer is JSON whichever was asked: see "What it knowingly does not do".
const SERVED: [(&str, &str); 3] = [
    ("application", "json"),
    ("application", "yaml"),
    ("application", "vnd.kubernetes.protobuf"),
];

/// What a request's answer is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io/v1` Table whose rows carry what `includeObject` asks.
    Table(Include),
    /// `PartialObjectMetadata` of this `meta.k8s.io` apiVersion: an object's whole metadata
    /// (managedFields included) and nothing else. Watch events carry such objects.
    Metadata(&'static str),
    /// `PartialObjectMetadataList` of this apiVersion: a list of those.
    MetadataList(&'static str),
}

/// One media range of an `Accept` header.
#[derive(Debug)]
struct MediaRange<'a> {
    ty: &'a str,
    subtype: &'a str,
    quality: f64,
    params: Vec<(&'a str, &'a str)>,
}

impl MediaRange<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn matches(&self, (ty, subtype): (&str, &str)) -> bool {
        (self.ty == ty && (self.subtype == subtype || self.subtype == "*"))
            || (self.ty == "*" && self.subtype == "*")
    }
}

/// The media ranges of an `Accept` header in the order they are tried (goautoneg's
/// `ParseAccept`): by quality, concrete types before wildcards, else as written. Ranges that
/// do not parse are skipped.
fn media_ranges(header: &str) -> Vec<MediaRange<'_>> {
    let mut ranges: Vec<MediaRange<'_>> = header
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let range = pieces.next().unwrap_or("").trim();
            let (ty, subtype) = match range.split_once('/') {
                Some((ty, subtype)) if !subtype.contains('/') => (ty.trim(), subtype.trim()),
                None if range == "*" => ("*", "*"),
                _ => return None,
            };
            let mut quality = 1.0;
            let mut params = Vec::new();
            for (key, value) in pieces.filter_map(|p| p.split_once('=')) {
                let (key, value) = (key.trim(), value.trim());
                if key == "q" {
                    quality = value.parse().unwrap_or(0.0);
                } else {
                    params.push((key, value));
                }
            }
            Some(MediaRange {
                ty,
                subtype,
                quality,
                params,
            })
        })
        .collect();
    // A stable sort: equal ranges keep the header's order.
    ranges.sort_by(|a, b| {
        b.quality
            .total_cmp(&a.quality)
            .then((a.ty == "*").cmp(&(b.ty == "*")))
            .then((a.subtype == "*").cmp(&(b.subtype == "*")))
    });
    ranges
}

impl Shape {
    /// The shape an `Accept` header asks of `t` (`negotiation.NegotiateOutputMediaType` with
    /// the endpoint's `AllowsMediaTypeTransform`): the first acceptable range wins, so a client
    /// may list plain JSON after a transformed form as its fall-back. No header means JSON
    /// objects; nothing acceptable is a 406 (`NotAcceptable`).
    pub fn negotiate(accept: &str, t: &ResourceType, include: Include) -> Result<Shape, ApiError> {
        if accept.trim().is_empty() {
            return Ok(Shape::Object);
        }
        media_ranges(accept)
            .iter()
            // q=0 refuses a type (RFC 9110), as recent apiservers read it.
            .filter(|range| range.quality > 0.0)
            .find_map(|range| {
                SERVED
                    .iter()
                    .filter(|served| range.matches(**served))
                    .find_map(|(_, subtype)| Shape::accepted(range, subtype, t, include))
            })
            .ok_or_else(|| {
                let served: Vec<String> = SERVED.iter().map(|(t, s)| format!("{t}/{s}")).collect();
                not_acceptable(format!(
                    "only the following media types are accepted: {}",
                    served.join(", ")
                ))
            })
    }

    /// The shape a range asks of a served media type, if this endpoint gives it.
    fn accepted(
        range: &MediaRange<'_>,
        subtype: &str,
        t: &ResourceType,
        include: Include,
    ) -> Option<Shape> {
        let (kind, group, version) = (range.param("as"), range.param("g"), range.param("v"));
        if kind.is_none() && group.is_none() && version.is_none() {
            // The CRD handler serves custom resources themselves as JSON or YAML only.
            return (t.builtin || subtype != "vnd.kubernetes.protobuf").then_some(Shape::Object);
        }
        if group != Some(META_GROUP) {
            return None;
        }
        let api_version = match version {
            Some("v1") => "meta.k8s.io/v1",
            Some("v1beta1") => "meta.k8s.io/v1beta1",
            _ => return None,
        };
        match kind {
            Some("Table") => matches!(subtype, "json" | "yaml").then_some(Shape::Table(include)),
            Some("PartialObjectMetadata") => Some(Shape::Metadata(api_version)),
            Some("PartialObjectMetadataList") => Some(Shape::MetadataList(api_version)),
            _ => None,
        }
    }

    /// The answer for one object (`served`: in the version the client asked), or a 406 when a
    /// list was asked for.
    pub fn object(self, t: &ResourceType, version: &str, served: Value) -> Result<Value, ApiError> {
        match self {
            Shape::Object => Ok(served),
            Shape::Table(include) => {
                let rv = meta::resource_version(&served).to_string();
                Ok(table::table(t, version, &[served], &rv, None, include))
            }
            Shape::Metadata(api_version) => {
                Ok(partial_object_metadata(api_version, &served["metadata"]))
            }
            Shape::MetadataList(_) => Err(not_acceptable(format!(
                "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
                go_type(t, false)
            ))),
        }
    }

    /// The shape of each watch event's object. The apiserver transforms every event's object
    /// on its own and, when that fails (a watch asking for `PartialObjectMetadataList`), logs
    /// it and sends the object whole (`watchEmbeddedEncoder.doEncode`).
    pub fn of_watch_events(self) -> Shape {
        match self {
            Shape::MetadataList(_) => Shape::Object,
            shape => shape,
        }
    }
}

/// The 406 for a list when one object's metadata was asked for.
pub fn metadata_asked_of_a_list(t: &ResourceType) -> ApiError {
    not_acceptable(format!(
        "you requested PartialObjectMetadata, but the requested object is a list ({})",
        go_type(t, true)
    ))
}

/// A `PartialObjectMetadata` object.
pub fn partial_object_metadata(api_version: &str, metadata: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": metadata})
}

fn not_acceptable(message: String) -> ApiError {
    ApiError::new(406, "NotAcceptable", message)
}

/// About what the apiserver's 406 names with `%T`: the registry's internal type, unstructured
/// for custom resources.
fn go_type(t: &ResourceType, list: bool) -> String {
    let list = if list { "List" } else { "" };
    if !t.builtin {
        return format!("*unstructured.Unstructured{list}");
    }
    let package = t.group.split('.').next().filter(|g| !g.is_empty());
    format!("*{}.{}{list}", package.unwrap_or("core"), t.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmaps() -> std::sync::Arc<ResourceType> {
        crate::registry::Registry::with_builtins()
            .lookup("", "v1", "configmaps")
            .cloned()
            .expect("configmaps are built in")
    }

    fn shape(accept: &str) -> Result<Shape, ApiError> {
        Shape::negotiate(accept, &configmaps(), Include::Metadata)
    }

    const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    const METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

    #[test]
    fn no_accept_header_or_plain_json_asks_for_objects() {
        assert_eq!(shape("").ok(), Some(Shape::Object));
        assert_eq!(shape("application/json").ok(), Some(Shape::Object));
        assert_eq!(shape("*/*").ok(), Some(Shape::Object));
    }

    #[test]
    fn kube_rs_metadata_headers_ask_for_partial_object_metadata() {
        assert_eq!(
            shape(METADATA).ok(),
            Some(Shape::Metadata("meta.k8s.io/v1"))
        );
        assert_eq!(
            shape(METADATA_LIST).ok(),
            Some(Shape::MetadataList("meta.k8s.io/v1"))
        );
    }

    #[test]
    fn the_first_acceptable_media_type_wins() {
        let client_go = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(
            shape(client_go).ok(),
            Some(Shape::MetadataList("meta.k8s.io/v1"))
        );
        assert_eq!(
            shape(&format!("application/json,{METADATA}")).ok(),
            Some(Shape::Object)
        );
    }

    #[test]
    fn quality_orders_media_types_before_the_header_order() {
        assert_eq!(
            shape(&format!("application/json;q=0.5, {METADATA}")).ok(),
            Some(Shape::Metadata("meta.k8s.io/v1"))
        );
        assert_eq!(
            shape(&format!("{METADATA};q=0, application/json")).ok(),
            Some(Shape::Object)
        );
    }

    #[test]
    fn an_unsupported_transform_falls_back_to_the_next_media_type() {
        let accept = "application/json;as=Pod;g=meta.k8s.io;v=v1, application/json";
        assert_eq!(shape(accept).ok(), Some(Shape::Object));
        let no_group = "application/json;as=PartialObjectMetadata;v=v1, application/json";
        assert_eq!(shape(no_group).ok(), Some(Shape::Object));
    }

    #[test]
    fn an_unsupported_transform_alone_is_not_acceptable() {
        for accept in [
            "application/json;as=Pod;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2",
            "application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1",
            "text/plain",
        ] {
            let e = shape(accept).expect_err(accept);
            assert_eq!((e.code, e.reason), (406, "NotAcceptable"), "{accept}");
            assert_eq!(
                e.message,
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            );
        }
    }

    #[test]
    fn kubectl_table_header_asks_for_a_table() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(shape(kubectl).ok(), Some(Shape::Table(Include::Metadata)));
    }

    #[test]
    fn a_list_shape_refuses_one_object_and_a_metadata_shape_refuses_a_list() {
        let t = configmaps();
        let list = Shape::MetadataList("meta.k8s.io/v1");
        let e = list
            .object(&t, "v1", json!({"metadata": {}}))
            .expect_err("not a list");
        assert_eq!(e.code, 406);
        assert!(e.message.contains("(*core.ConfigMap)"), "{}", e.message);
        let e = metadata_asked_of_a_list(&t);
        assert!(e.message.contains("(*core.ConfigMapList)"), "{}", e.message);
    }

    #[test]
    fn metadata_keeps_the_whole_metadata_and_nothing_else() {
        let served = json!({
            "apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
            "metadata": {"name": "a", "managedFields": [{"manager": "m"}]},
        });
        let out = Shape::Metadata("meta.k8s.io/v1")
            .object(&configmaps(), "v1", served)
            .expect("an object");
        assert_eq!(
            out,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"name": "a", "managedFields": [{"manager": "m"}]}})
        );
    }
}
