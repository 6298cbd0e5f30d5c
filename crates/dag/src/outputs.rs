//! Outputs: the keys and values a release publishes through its `outputsFrom` Secrets and
//! ConfigMaps (SPEC §2.1, §3), read from objects the caller already fetched.
//!
//! Values are secrets: [`Outputs`] prints key names only, and no error carries a value.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use upstart_api::v1alpha1::{OutputScope, OutputSource};

use crate::Error;

/// Output keys and their values. `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    values: BTreeMap<String, String>,
}

impl Outputs {
    /// No outputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one output.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Whether the key is published.
    pub fn contains_key(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The keys, sorted, owned (for status and messages).
    pub fn key_names(&self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }

    /// Keys and values, sorted by key (for digests; never log them).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for Outputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outputs")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Outputs {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Outputs {
            values: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// The Secrets and ConfigMaps of a namespace that outputs may be read from, by name.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Secrets by `metadata.name`.
    pub secrets: BTreeMap<String, Arc<Secret>>,
    /// ConfigMaps by `metadata.name`.
    pub config_maps: BTreeMap<String, Arc<ConfigMap>>,
}

impl Objects {
    /// No objects.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a Secret under its `metadata.name`.
    pub fn with_secret(mut self, secret: impl Into<Arc<Secret>>) -> Self {
        let secret = secret.into();
        self.secrets
            .insert(secret.metadata.name.clone().unwrap_or_default(), secret);
        self
    }

    /// Adds a ConfigMap under its `metadata.name`.
    pub fn with_config_map(mut self, config_map: impl Into<Arc<ConfigMap>>) -> Self {
        let config_map = config_map.into();
        self.config_maps.insert(
            config_map.metadata.name.clone().unwrap_or_default(),
            config_map,
        );
        self
    }
}

/// An `outputsFrom` entry that does not yet hold what it must: a wait, not a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingSource {
    /// `Secret/NAME` or `ConfigMap/NAME` (prefixed with the release key for a service).
    pub origin: String,
    /// Listed keys the object lacks; empty when the object itself does not exist.
    pub keys: Vec<String>,
}

impl fmt::Display for MissingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keys.is_empty() {
            write!(f, "{} does not exist", self.origin)
        } else {
            write!(f, "{} lacks key(s) {}", self.origin, self.keys.join(", "))
        }
    }
}

/// What the `outputsFrom` entries hold now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectedOutputs {
    /// The union of every entry's keys.
    pub outputs: Outputs,
    /// Non-optional entries whose object or listed keys do not exist yet.
    pub missing: Vec<MissingSource>,
}

impl CollectedOutputs {
    /// Every non-optional object exists and holds its listed keys (SPEC §2.6, item 5).
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// The outputs of one release: the union of all its `outputsFrom` entries (both scopes: a
/// dependent naming the release sees everything it publishes). The same key from two entries is
/// an error naming both.
pub fn collect_release_outputs(
    sources: &[OutputSource],
    objects: &Objects,
) -> Result<CollectedOutputs, Error> {
    let mut collected = Collector::default();
    for (index, source) in sources.iter().enumerate() {
        collected.add(None, index, source, objects)?;
    }
    Ok(collected.finish())
}

/// The outputs of an UpstartService: the union of its releases' `scope: external` entries,
/// given as (release key, its `outputsFrom`).
pub fn collect_service_outputs<'a>(
    releases: impl IntoIterator<Item = (&'a str, &'a [OutputSource])>,
    objects: &Objects,
) -> Result<CollectedOutputs, Error> {
    let mut collected = Collector::default();
    for (key, sources) in releases {
        for (index, source) in sources.iter().enumerate() {
            if source.scope == OutputScope::External {
                collected.add(Some(key), index, source, objects)?;
            }
        }
    }
    Ok(collected.finish())
}

#[derive(Default)]
struct Collector {
    values: BTreeMap<String, String>,
    origins: BTreeMap<String, String>,
    missing: Vec<MissingSource>,
}

impl Collector {
    fn add(
        &mut self,
        release: Option<&str>,
        index: usize,
        source: &OutputSource,
        objects: &Objects,
    ) -> Result<(), Error> {
        let (kind, name) = match (&source.secret_ref, &source.config_map_ref) {
            (Some(secret), _) => ("Secret", secret.name.as_str()),
            (None, Some(config_map)) => ("ConfigMap", config_map.name.as_str()),
            (None, None) => return Err(Error::EmptyOutputSource { index }),
        };
        let origin = match release {
            Some(key) => format!("{key} ({kind}/{name})"),
            None => format!("{kind}/{name}"),
        };
        let entries = match kind {
            "Secret" => objects
                .secrets
                .get(name)
                .map(|s| secret_entries(s, &origin))
                .transpose()?,
            _ => objects
                .config_maps
                .get(name)
                .map(|c| config_map_entries(c, &origin))
                .transpose()?,
        };
        let Some(mut entries) = entries else {
            if !source.optional {
                self.missing.push(MissingSource {
                    origin,
                    keys: Vec::new(),
                });
            }
            return Ok(());
        };
        if let Some(keys) = &source.keys {
            let lacking: Vec<String> = keys
                .iter()
                .filter(|k| !entries.contains_key(k.as_str()))
                .cloned()
                .collect();
            entries.retain(|k, _| keys.contains(k));
            // `optional` relaxes the whole entry: neither the object nor its keys hold the
            // release back.
            if !lacking.is_empty() && !source.optional {
                self.missing.push(MissingSource {
                    origin: origin.clone(),
                    keys: lacking,
                });
            }
        }
        for (key, value) in entries {
            match self.origins.entry(key.clone()) {
                Entry::Occupied(first) => {
                    return Err(Error::DuplicateOutputKey {
                        key,
                        first: first.get().clone(),
                        second: origin,
                    });
                }
                Entry::Vacant(slot) => {
                    slot.insert(origin.clone());
                    self.values.insert(key, value);
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> CollectedOutputs {
        CollectedOutputs {
            outputs: Outputs {
                values: self.values,
            },
            missing: self.missing,
        }
    }
}

fn utf8(bytes: &[u8], origin: &str, key: &str) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::OutputNotUtf8 {
        origin: origin.to_owned(),
        key: key.to_owned(),
    })
}

/// `data` (bytes), then `stringData` over it, as the API server merges them on write (objects
/// read from files may still carry `stringData`).
fn secret_entries(secret: &Secret, origin: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for (key, bytes) in secret.data.iter().flatten() {
        out.insert(key.clone(), utf8(&bytes.0, origin, key)?);
    }
    for (key, value) in secret.string_data.iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

fn config_map_entries(
    config_map: &ConfigMap,
    origin: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for (key, bytes) in config_map.binary_data.iter().flatten() {
        out.insert(key.clone(), utf8(&bytes.0, origin, key)?);
    }
    for (key, value) in config_map.data.iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use upstart_api::v1alpha1::ObjectReference;

    use super::*;
    use upstart_failure::Classify;

    fn secret(name: &str, data: &[(&str, &[u8])]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn config_map(name: &str, data: &[(&str, &str)], binary: &[(&str, &[u8])]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            binary_data: Some(
                binary
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn from_secret(name: &str) -> OutputSource {
        OutputSource {
            secret_ref: Some(ObjectReference {
                name: name.to_owned(),
            }),
            config_map_ref: None,
            keys: None,
            optional: false,
            scope: OutputScope::Internal,
        }
    }

    fn from_config_map(name: &str) -> OutputSource {
        OutputSource {
            secret_ref: None,
            config_map_ref: Some(ObjectReference {
                name: name.to_owned(),
            }),
            ..from_secret("unused")
        }
    }

    fn objects() -> Objects {
        Objects::new()
            .with_secret(secret(
                "postgres",
                &[("POSTGRES_USER", b"app"), ("POSTGRES_PASSWORD", b"s3cret")],
            ))
            .with_config_map(config_map(
                "redis-outputs",
                &[("SERVICE_FQDN", "redis.ns.svc")],
                &[("CA", b"pem")],
            ))
            .with_secret(secret("binary", &[("BLOB", &[0xff, 0xfe, 0x00])]))
    }

    #[test]
    fn a_release_publishes_the_union_of_its_secret_and_config_map_keys() {
        let collected = collect_release_outputs(
            &[from_secret("postgres"), from_config_map("redis-outputs")],
            &objects(),
        )
        .unwrap();
        assert!(collected.is_complete());
        assert_eq!(
            collected.outputs.key_names(),
            ["CA", "POSTGRES_PASSWORD", "POSTGRES_USER", "SERVICE_FQDN"]
        );
        assert_eq!(collected.outputs.get("POSTGRES_USER"), Some("app"));
        assert_eq!(collected.outputs.get("CA"), Some("pem"));
    }

    #[test]
    fn string_data_of_a_secret_is_read_too() {
        let mut s = secret("s", &[("A", b"from-data")]);
        s.string_data = Some([("B".to_owned(), "from-string-data".to_owned())].into());
        let collected =
            collect_release_outputs(&[from_secret("s")], &Objects::new().with_secret(s)).unwrap();
        assert_eq!(collected.outputs.key_names(), ["A", "B"]);
    }

    #[test]
    fn the_keys_filter_keeps_only_listed_keys_and_waits_for_missing_ones() {
        let mut source = from_secret("postgres");
        source.keys = Some(vec!["POSTGRES_USER".to_owned(), "POSTGRES_DB".to_owned()]);
        let collected = collect_release_outputs(&[source], &objects()).unwrap();
        assert_eq!(collected.outputs.key_names(), ["POSTGRES_USER"]);
        assert_eq!(
            collected.missing,
            vec![MissingSource {
                origin: "Secret/postgres".to_owned(),
                keys: vec!["POSTGRES_DB".to_owned()]
            }]
        );
        assert_eq!(
            collected.missing[0].to_string(),
            "Secret/postgres lacks key(s) POSTGRES_DB"
        );
    }

    #[test]
    fn a_missing_object_is_waited_for_unless_optional() {
        let collected = collect_release_outputs(&[from_secret("later")], &objects()).unwrap();
        assert_eq!(
            collected.missing[0].to_string(),
            "Secret/later does not exist"
        );
        let mut optional = from_secret("later");
        optional.optional = true;
        optional.keys = Some(vec!["X".to_owned()]);
        let collected = collect_release_outputs(&[optional], &objects()).unwrap();
        assert!(collected.is_complete() && collected.outputs.is_empty());
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_naming_the_key_and_not_the_bytes() {
        let err = collect_release_outputs(&[from_secret("binary")], &objects()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret/binary: the value of key BLOB is not valid UTF-8 text"
        );
        let cm = config_map("bin", &[], &[("B", &[0xc3, 0x28])]);
        let err = collect_release_outputs(
            &[from_config_map("bin")],
            &Objects::new().with_config_map(cm),
        )
        .unwrap_err();
        assert!(matches!(err, Error::OutputNotUtf8 { ref key, .. } if key == "B"));
    }

    #[test]
    fn the_same_key_from_two_entries_is_an_error_naming_both_sources() {
        let objects = objects().with_config_map(config_map("more", &[("POSTGRES_USER", "x")], &[]));
        let err = collect_release_outputs(
            &[from_secret("postgres"), from_config_map("more")],
            &objects,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "output key POSTGRES_USER is published by both Secret/postgres and ConfigMap/more"
        );
        assert!(err.needs_spec_change());
    }

    #[test]
    fn a_service_exports_only_its_releases_external_outputs() {
        let mut external = from_config_map("redis-outputs");
        external.scope = OutputScope::External;
        let internal = [from_secret("postgres")];
        let exported = [external];
        let collected = collect_service_outputs(
            [
                ("postgres", internal.as_slice()),
                ("api", exported.as_slice()),
            ],
            &objects(),
        )
        .unwrap();
        assert_eq!(collected.outputs.key_names(), ["CA", "SERVICE_FQDN"]);
    }

    #[test]
    fn a_key_exported_by_two_releases_of_a_service_names_both() {
        let mut one = from_secret("postgres");
        one.scope = OutputScope::External;
        let sources = [one];
        let err = collect_service_outputs(
            [("a", sources.as_slice()), ("b", sources.as_slice())],
            &objects(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("published by both a (Secret/postgres) and b (Secret/postgres)"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_shows_keys_but_never_values() {
        let collected = collect_release_outputs(&[from_secret("postgres")], &objects()).unwrap();
        let debug = format!("{collected:?}");
        assert!(
            debug.contains("POSTGRES_PASSWORD") && !debug.contains("s3cret"),
            "{debug}"
        );
    }
}
