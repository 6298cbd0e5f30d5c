//! Reading manifest files (multi-document YAML, `kind: List`) and putting them in apply order.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::Error;

/// One object read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it came from, for messages: `FILE#INDEX` (documents counted from 1).
    pub source: String,
    /// The object.
    pub object: Value,
}

impl Manifest {
    /// `apiVersion` (`GROUP/VERSION`, or `VERSION` for the core group).
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// Whether this is an `apiextensions.k8s.io` CustomResourceDefinition.
    pub fn is_crd(&self) -> bool {
        self.kind() == "CustomResourceDefinition"
            && self.api_version().starts_with("apiextensions.k8s.io/")
    }

    fn rank(&self) -> u8 {
        if self.is_crd() {
            0
        } else if self.kind() == "Namespace" && self.api_version() == "v1" {
            1
        } else {
            2
        }
    }
}

/// Reads every file, in order (a file's objects in document order). A directory stands for
/// its `.yaml` and `.yml` files, recursively, in path order.
pub fn read_files<P: AsRef<Path>>(files: &[P]) -> Result<Vec<Manifest>, Error> {
    let mut out = Vec::new();
    for path in files {
        let path = path.as_ref();
        let expanded = if path.is_dir() {
            yaml_files_in(path)?
        } else {
            vec![path.to_path_buf()]
        };
        for file in expanded {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::ReadFile {
                path: file.clone(),
                source,
            })?;
            out.extend(parse(&file.display().to_string(), &text)?);
        }
    }
    Ok(out)
}

/// The `.yaml` and `.yml` files under `dir`, recursively, sorted by path.
pub fn yaml_files_in(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let fail = |source| Error::ReadFile {
            path: dir.clone(),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(fail)? {
            let path = entry.map_err(fail)?.path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Parses the YAML documents of one file (or any text; `origin` names it in messages). Empty
/// documents are skipped and `kind: List` documents contribute their items.
pub fn parse(origin: &str, text: &str) -> Result<Vec<Manifest>, Error> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let source = format!("{origin}#{}", i + 1);
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| Error::InvalidManifest {
                source_name: source.clone(),
                message: e.to_string(),
            })?;
        let items = match value {
            Value::Null => continue,
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                map.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            }
            other => vec![other],
        };
        for object in items {
            let manifest = Manifest {
                source: source.clone(),
                object,
            };
            if manifest.api_version().is_empty()
                || manifest.kind().is_empty()
                || manifest.name().is_empty()
            {
                return Err(Error::InvalidManifest {
                    source_name: source,
                    message: "every object needs apiVersion, kind and metadata.name".into(),
                });
            }
            out.push(manifest);
        }
    }
    Ok(out)
}

/// Apply order: CustomResourceDefinitions, then Namespaces, then everything else, each group
/// in file order (a stable sort, so applying it twice changes nothing).
pub fn apply_order(mut manifests: Vec<Manifest>) -> Vec<Manifest> {
    manifests.sort_by_key(Manifest::rank);
    manifests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(ms: &[Manifest]) -> Vec<&str> {
        ms.iter().map(Manifest::kind).collect()
    }

    const FILE: &str = "
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
# only a comment
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
- {apiVersion: v1, kind: Secret, metadata: {name: b}}
";

    #[test]
    fn documents_and_list_items_are_read_and_empty_documents_skipped() {
        let ms = parse("f.yaml", FILE).unwrap();
        assert_eq!(
            kinds(&ms),
            [
                "Widget",
                "Namespace",
                "CustomResourceDefinition",
                "ConfigMap",
                "Secret"
            ]
        );
        assert_eq!(ms[0].source, "f.yaml#1");
        assert_eq!(ms[2].source, "f.yaml#4");
    }

    #[test]
    fn crds_come_first_then_namespaces_then_the_rest_in_file_order() {
        let ms = apply_order(parse("f.yaml", FILE).unwrap());
        assert_eq!(
            kinds(&ms),
            [
                "CustomResourceDefinition",
                "Namespace",
                "Widget",
                "ConfigMap",
                "Secret"
            ]
        );
    }

    #[test]
    fn a_directory_stands_for_its_yaml_files_in_path_order() {
        let tmp = tempfile::tempdir().unwrap();
        let doc =
            |name: &str| format!("{{apiVersion: v1, kind: ConfigMap, metadata: {{name: {name}}}}}");
        std::fs::create_dir_all(tmp.path().join("b")).unwrap();
        std::fs::write(tmp.path().join("b/two.yml"), doc("two")).unwrap();
        std::fs::write(tmp.path().join("a.yaml"), doc("one")).unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "not yaml").unwrap();
        let ms = read_files(&[tmp.path()]).unwrap();
        let names: Vec<&str> = ms.iter().map(Manifest::name).collect();
        assert_eq!(names, ["one", "two"]);
    }

    #[test]
    fn object_without_name_is_refused_with_its_location() {
        let err = parse("f.yaml", "apiVersion: v1\nkind: ConfigMap\n").unwrap_err();
        assert!(err.to_string().contains("f.yaml#1"), "{err}");
    }

    #[test]
    fn invalid_yaml_is_refused_with_its_location() {
        let text = "{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\n[unclosed\n";
        let err = parse("f.yaml", text).unwrap_err();
        assert!(err.to_string().contains("f.yaml#2"), "{err}");
    }
}
