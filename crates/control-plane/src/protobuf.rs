//! Decoding of the Kubernetes protobuf envelope for the few kinds kubectl's imperative commands
//! send that way (`kubectl create namespace|configmap|secret|serviceaccount`), and of the
//! `DeleteOptions` client-go's typed clients send with every delete (helm's storage driver
//! removes its release Secrets so). Everything else in protobuf is refused with 415; answers
//! are always JSON, which clients accept.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The magic prefix of `application/vnd.kubernetes.protobuf` bodies.
const MAGIC: &[u8] = b"k8s\0";

/// A field of a protobuf message: number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                out.push((num, Field::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos = pos.checked_add(8)?,
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
    }
    Some(out)
}

fn text(b: &[u8]) -> Option<Value> {
    Some(Value::String(String::from_utf8(b.to_vec()).ok()?))
}

/// A `map<string, string>` (or bytes, base64-encoded as in JSON) entry into `map`.
fn map_entry(b: &[u8], map: &mut Map<String, Value>, bytes_value: bool) -> Option<()> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(k)) => key = String::from_utf8(k.to_vec()).ok()?,
            (2, Field::Bytes(v)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v));
            }
            (2, Field::Bytes(v)) => value = text(v)?,
            _ => {}
        }
    }
    map.insert(key, value);
    Some(())
}

fn push_to(obj: &mut Map<String, Value>, key: &str, v: Value) {
    let entry = obj.entry(key).or_insert_with(|| json!([]));
    if let Some(a) = entry.as_array_mut() {
        a.push(v);
    }
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => _ = m.insert("name".into(), text(v)?),
            (2, Field::Bytes(v)) => _ = m.insert("generateName".into(), text(v)?),
            (3, Field::Bytes(v)) => _ = m.insert("namespace".into(), text(v)?),
            (11 | 12, Field::Bytes(v)) => {
                let key = if n == 11 { "labels" } else { "annotations" };
                let entry = m.entry(key).or_insert_with(|| json!({}));
                map_entry(v, entry.as_object_mut()?, false)?;
            }
            (14, Field::Bytes(v)) => push_to(&mut m, "finalizers", text(v)?),
            _ => {}
        }
    }
    Some(Value::Object(m))
}

/// The `runtime.Unknown` envelope after the magic prefix: `typeMeta` (1: apiVersion, kind),
/// `raw` (2), `contentEncoding` (3), `contentType` (4). Returns the kind it names (empty when
/// unset) and the raw message.
fn envelope(body: &[u8]) -> Option<(String, &[u8])> {
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(body.strip_prefix(MAGIC)?)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (tn, tf) in fields(type_meta)? {
                    if let (2, Field::Bytes(k)) = (tn, tf) {
                        kind = String::from_utf8(k.to_vec()).ok()?;
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    Some((kind, raw))
}

/// Decodes a protobuf `DeleteOptions` (`k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions`)
/// into its JSON form; `None` when the body is not one.
pub fn decode_delete_options(body: &[u8]) -> Option<Value> {
    let (kind, raw) = envelope(body)?;
    if !kind.is_empty() && kind != "DeleteOptions" {
        return None;
    }
    let mut obj = Map::new();
    obj.insert("kind".into(), json!("DeleteOptions"));
    obj.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    for (n, f) in fields(raw)? {
        match (n, f) {
            // int64 in two's complement, as protobuf encodes negative varints.
            (1, Field::Varint(v)) => _ = obj.insert("gracePeriodSeconds".into(), json!(v as i64)),
            (2, Field::Bytes(b)) => {
                let mut pre = Map::new();
                for (pn, pf) in fields(b)? {
                    match (pn, pf) {
                        (1, Field::Bytes(v)) => _ = pre.insert("uid".into(), text(v)?),
                        (2, Field::Bytes(v)) => _ = pre.insert("resourceVersion".into(), text(v)?),
                        _ => {}
                    }
                }
                obj.insert("preconditions".into(), Value::Object(pre));
            }
            (3, Field::Varint(v)) => _ = obj.insert("orphanDependents".into(), json!(v != 0)),
            (4, Field::Bytes(v)) => _ = obj.insert("propagationPolicy".into(), text(v)?),
            (5, Field::Bytes(v)) => push_to(&mut obj, "dryRun", text(v)?),
            (6, Field::Varint(v)) => {
                _ = obj.insert(
                    "ignoreStoreReadErrorWithClusterBreakingPotential".into(),
                    json!(v != 0),
                );
            }
            _ => {}
        }
    }
    Some(Value::Object(obj))
}

/// Decodes a protobuf body of one of the supported kinds into its JSON form; `None` when the
/// body is not such a body.
pub fn decode(body: &[u8], kind: &str) -> Option<Value> {
    let (_, raw) = envelope(body)?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!("v1"));
    obj.insert("kind".into(), json!(kind));
    for (n, f) in fields(raw)? {
        let Field::Bytes(b) = f else {
            // The only varint fields of these kinds are `immutable` / `automountServiceAccountToken`.
            if let Field::Varint(v) = f {
                match (kind, n) {
                    ("ConfigMap", 4) | ("Secret", 5) => {
                        _ = obj.insert("immutable".into(), json!(v != 0))
                    }
                    ("ServiceAccount", 4) => {
                        _ = obj.insert("automountServiceAccountToken".into(), json!(v != 0));
                    }
                    _ => {}
                }
            }
            continue;
        };
        match (kind, n) {
            (_, 1) => _ = obj.insert("metadata".into(), object_meta(b)?),
            ("Namespace", 2) => {
                let mut spec = Map::new();
                for (sn, sf) in fields(b)? {
                    if let (1, Field::Bytes(v)) = (sn, sf) {
                        push_to(&mut spec, "finalizers", text(v)?);
                    }
                }
                obj.insert("spec".into(), Value::Object(spec));
            }
            ("ConfigMap", 2 | 3) | ("Secret", 2 | 4) => {
                let (key, bytes) = match (kind, n) {
                    ("ConfigMap", 2) => ("data", false),
                    ("ConfigMap", _) => ("binaryData", true),
                    ("Secret", 2) => ("data", true),
                    _ => ("stringData", false),
                };
                let entry = obj.entry(key).or_insert_with(|| json!({}));
                map_entry(b, entry.as_object_mut()?, bytes)?;
            }
            ("Secret", 3) => _ = obj.insert("type".into(), text(b)?),
            _ => {}
        }
    }
    Some(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(num << 3 | 2).unwrap(),
            u8::try_from(bytes.len()).unwrap(),
        ];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_protobuf_configmap_decodes_to_its_json_form() {
        let meta = [
            field(1, b"cfg"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let raw = [
            field(1, &meta),
            field(2, &[field(1, b"k"), field(2, b"v")].concat()),
        ]
        .concat();
        let envelope = [
            b"k8s\0".to_vec(),
            field(1, &[field(1, b"v1"), field(2, b"ConfigMap")].concat()),
            field(2, &raw),
        ]
        .concat();
        let obj = decode(&envelope, "ConfigMap").unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
    }

    fn varint_field(num: u64, value: u64) -> Vec<u8> {
        let mut out = vec![u8::try_from(num << 3).unwrap()];
        let mut v = value;
        while v >= 0x80 {
            out.push(u8::try_from(v & 0x7f).unwrap() | 0x80);
            v >>= 7;
        }
        out.push(u8::try_from(v).unwrap());
        out
    }

    /// What client-go's typed clients send with a delete under
    /// `application/vnd.kubernetes.protobuf`.
    #[test]
    fn a_protobuf_delete_options_decodes_to_its_json_form() {
        let raw = [
            varint_field(1, u64::MAX), // gracePeriodSeconds: -1
            field(2, &[field(1, b"u-1"), field(2, b"42")].concat()),
            varint_field(3, 0),
            field(4, b"Foreground"),
            field(5, b"All"),
        ]
        .concat();
        let envelope = [
            b"k8s\0".to_vec(),
            field(
                1,
                &[field(1, b"meta.k8s.io/v1"), field(2, b"DeleteOptions")].concat(),
            ),
            field(2, &raw),
            field(3, b""),
            field(4, b""),
        ]
        .concat();
        assert_eq!(
            decode_delete_options(&envelope).unwrap(),
            json!({
                "kind": "DeleteOptions",
                "apiVersion": "meta.k8s.io/v1",
                "gracePeriodSeconds": -1,
                "preconditions": {"uid": "u-1", "resourceVersion": "42"},
                "orphanDependents": false,
                "propagationPolicy": "Foreground",
                "dryRun": ["All"],
            })
        );
    }

    #[test]
    fn a_protobuf_body_of_another_kind_is_not_delete_options() {
        let envelope = [
            b"k8s\0".to_vec(),
            field(1, &[field(1, b"v1"), field(2, b"ConfigMap")].concat()),
            field(2, &field(1, &field(1, b"cfg"))),
        ]
        .concat();
        assert_eq!(decode_delete_options(&envelope), None);
        assert_eq!(decode_delete_options(b"{}"), None);
    }
}
