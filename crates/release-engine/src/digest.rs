//! Stable `sha256:` digests of JSON documents and of render inputs (render cache keys, status
//! `appliedDigest`).
//!
//! JSON is digested in a canonical form (object keys sorted, no insignificant whitespace), so the
//! digest does not depend on key order: serde_json's map keeps insertion order whenever any crate
//! in the build enables its `preserve_order` feature, so sorting is done here explicitly.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The prefix of every digest this crate produces.
pub const PREFIX: &str = "sha256:";

/// `sha256:<hex>` of raw bytes.
pub fn bytes_digest(bytes: &[u8]) -> String {
    format_digest(&Sha256::digest(bytes))
}

/// `sha256:<hex>` of a JSON document in canonical form: equal documents give equal digests
/// whatever the order of their keys.
pub fn json_digest(value: &Value) -> String {
    let mut hasher = Sha256::new();
    write_canonical(value, &mut |chunk: &[u8]| hasher.update(chunk));
    format_digest(&hasher.finalize())
}

/// The canonical JSON text of a document: keys sorted by their UTF-8 bytes, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut |chunk: &[u8]| out.extend_from_slice(chunk));
    // Only serde_json output and ASCII punctuation were written, so this is valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(value: &Value, out: &mut dyn FnMut(&[u8])) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out(b"{");
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                write_scalar(&Value::String(key.clone()), out);
                out(b":");
                write_canonical(item, out);
            }
            out(b"}");
        }
        Value::Array(items) => {
            out(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                write_canonical(item, out);
            }
            out(b"]");
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut dyn FnMut(&[u8])) {
    // Serialising a scalar Value cannot fail; an empty write would only ever be a bug.
    out(serde_json::to_string(value).unwrap_or_default().as_bytes());
}

fn format_digest(hash: &[u8]) -> String {
    let mut out = String::with_capacity(PREFIX.len() + hash.len() * 2);
    out.push_str(PREFIX);
    for byte in hash {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Digests a sequence of named fields without ambiguity: every name and value is length-prefixed,
/// so `("ab", "c")` and `("a", "bc")` never collide. Used for render cache keys.
#[derive(Clone, Default)]
pub struct FieldDigest {
    hasher: Sha256,
}

impl FieldDigest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one named field.
    pub fn field(mut self, name: &str, value: &str) -> Self {
        for part in [name.as_bytes(), value.as_bytes()] {
            self.hasher.update((part.len() as u64).to_be_bytes());
            self.hasher.update(part);
        }
        self
    }

    /// Adds one named list of values (its length first, then each value).
    pub fn list<'a>(mut self, name: &str, values: impl IntoIterator<Item = &'a str>) -> Self {
        let values: Vec<&str> = values.into_iter().collect();
        self = self.field(name, &values.len().to_string());
        for value in values {
            self = self.field("", value);
        }
        self
    }

    pub fn finish(self) -> String {
        format_digest(&self.hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_carry_the_sha256_prefix_and_64_hex_digits() {
        let d = bytes_digest(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn key_order_does_not_change_the_json_digest() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(json_digest(&a), json_digest(&b));
    }

    #[test]
    fn array_order_and_values_change_the_json_digest() {
        assert_ne!(json_digest(&json!([1, 2])), json_digest(&json!([2, 1])));
        assert_ne!(
            json_digest(&json!({"a": "1"})),
            json_digest(&json!({"a": 1}))
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_has_no_whitespace() {
        let v = json!({"z": {"b": true, "a": null}, "a": ["x\"y", 1.5]});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":["x\"y",1.5],"z":{"a":null,"b":true}}"#
        );
        assert_eq!(json_digest(&v), bytes_digest(canonical_json(&v).as_bytes()));
    }

    #[test]
    fn field_digests_do_not_collide_when_boundaries_move() {
        let a = FieldDigest::new().field("a", "bc").finish();
        let b = FieldDigest::new().field("ab", "c").finish();
        assert_ne!(a, b);
        let l1 = FieldDigest::new().list("x", ["a", "b"]).finish();
        let l2 = FieldDigest::new().list("x", ["ab"]).finish();
        assert_ne!(l1, l2);
        assert_eq!(l1, FieldDigest::new().list("x", ["a", "b"]).finish());
    }
}
