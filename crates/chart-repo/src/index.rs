//! Rendering a Helm repository `index.yaml` (apiVersion v1) from packaged charts.
//!
//! Each entry is the chart's own `Chart.yaml` metadata plus `urls` (relative to the repository
//! URL, as ChartMuseum serves them), `created` and `digest`; entries of one chart are listed
//! newest version first. Every time comes from the files, never from the clock, so the same
//! charts always give the same bytes (and so the same `ETag`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_yaml_ng::{Mapping, Value};

use crate::{Error, PackagedChart};

/// Renders `index.yaml` for `charts`; `generated` is the index's own time stamp.
pub fn render_index(charts: &[PackagedChart], generated: SystemTime) -> Result<String, Error> {
    merge_index(charts, &[], generated)
}

/// Renders the overlay's `index.yaml`: the local `charts`, then each upstream's entries (name,
/// then its versions as the upstream index lists them) for every version no earlier source
/// has, each entry's `urls` pointing at this repository (`NAME-VERSION.tgz`) so that archives
/// are fetched through it. Versions of a chart are listed newest first, as Helm sorts them.
pub fn merge_index(
    charts: &[PackagedChart],
    upstreams: &[&[(String, Vec<Mapping>)]],
    generated: SystemTime,
) -> Result<String, Error> {
    let mut by_name: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for chart in charts {
        by_name
            .entry(chart.name.clone())
            .or_default()
            .push((chart.version.clone(), entry(chart)));
    }
    for upstream in upstreams {
        for (name, versions) in upstream.iter() {
            for upstream_entry in versions {
                let Some(version) = upstream_entry.get("version").and_then(Value::as_str) else {
                    continue;
                };
                let known = by_name.entry(name.clone()).or_default();
                if known.iter().any(|(v, _)| v == version) {
                    continue;
                }
                let mut rewritten = upstream_entry.clone();
                rewritten.insert(
                    "urls".into(),
                    Value::Sequence(vec![format!("{name}-{version}.tgz").into()]),
                );
                known.push((version.to_owned(), Value::Mapping(rewritten)));
            }
        }
    }
    let mut entries = Mapping::new();
    for (name, mut versions) in by_name {
        versions.sort_by_key(|(v, _)| std::cmp::Reverse(version_key(v)));
        let list = versions.into_iter().map(|(_, e)| e).collect();
        entries.insert(Value::from(name), Value::Sequence(list));
    }
    let mut index = Mapping::new();
    index.insert("apiVersion".into(), "v1".into());
    index.insert("entries".into(), Value::Mapping(entries));
    index.insert("generated".into(), rfc3339(generated).into());
    Ok(serde_yaml_ng::to_string(&index)?)
}

fn entry(chart: &PackagedChart) -> Value {
    let mut map = chart.metadata.clone();
    map.insert(
        "urls".into(),
        Value::Sequence(vec![chart.file_name().into()]),
    );
    map.insert("created".into(), rfc3339(chart.modified).into());
    map.insert("digest".into(), chart.digest.clone().into());
    Value::Mapping(map)
}

/// Orders versions by semver precedence; anything unparsable sorts first (oldest).
fn version_key(version: &str) -> Option<semver::Version> {
    semver::Version::parse(version.strip_prefix('v').unwrap_or(version)).ok()
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn chart(name: &str, version: &str, secs: u64) -> PackagedChart {
        let metadata: Mapping = serde_yaml_ng::from_str(&format!(
            "apiVersion: v2\nname: {name}\nversion: {version}\ndescription: d\nappVersion: '9'\n"
        ))
        .unwrap();
        PackagedChart {
            name: name.into(),
            version: version.into(),
            dir: PathBuf::from(name),
            archive: vec![],
            digest: format!("{name}{version}"),
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            metadata,
        }
    }

    #[test]
    fn index_lists_versions_newest_first_with_digest_urls_and_created() {
        let charts = [
            chart("a", "1.2.0", 10),
            chart("a", "1.10.0", 20),
            chart("b", "0.1.0", 0),
        ];
        let text = render_index(&charts, SystemTime::UNIX_EPOCH).unwrap();
        let index: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(index["apiVersion"], "v1");
        let a = index["entries"]["a"].as_sequence().unwrap();
        assert_eq!(a[0]["version"], "1.10.0");
        assert_eq!(a[1]["version"], "1.2.0");
        assert_eq!(a[0]["urls"][0], "a-1.10.0.tgz");
        assert_eq!(a[0]["digest"], "a1.10.0");
        assert_eq!(a[0]["created"], "1970-01-01T00:00:20Z");
        assert_eq!(a[0]["appVersion"], "9");
        assert_eq!(a[0]["description"], "d");
        assert_eq!(index["entries"]["b"][0]["name"], "b");
    }

    #[test]
    fn same_charts_render_the_same_bytes() {
        let charts = [chart("a", "1.0.0", 5)];
        assert_eq!(
            render_index(&charts, SystemTime::UNIX_EPOCH).unwrap(),
            render_index(&charts, SystemTime::UNIX_EPOCH).unwrap()
        );
    }

    fn upstream_entry(name: &str, version: &str, digest: &str) -> Mapping {
        serde_yaml_ng::from_str(&format!(
            "name: {name}\nversion: {version}\ndigest: {digest}\nurls: [https://up.example/charts/{name}-{version}.tgz]\n"
        ))
        .unwrap()
    }

    #[test]
    fn merged_index_prefers_local_versions_and_lists_upstream_ones_through_this_repository() {
        let local = [chart("a", "1.0.0", 10)];
        let upstream = vec![
            (
                "a".to_owned(),
                vec![
                    upstream_entry("a", "2.0.0", "up2"),
                    upstream_entry("a", "1.0.0", "up1"),
                ],
            ),
            ("b".to_owned(), vec![upstream_entry("b", "0.3.0", "b3")]),
        ];
        let text = merge_index(&local, &[&upstream], SystemTime::UNIX_EPOCH).unwrap();
        let index: Value = serde_yaml_ng::from_str(&text).unwrap();
        let a = index["entries"]["a"].as_sequence().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0]["version"], "2.0.0");
        assert_eq!(a[0]["digest"], "up2");
        assert_eq!(a[0]["urls"][0], "a-2.0.0.tgz");
        assert_eq!(a[1]["version"], "1.0.0");
        assert_eq!(a[1]["digest"], "a1.0.0", "the local chart wins");
        assert_eq!(index["entries"]["b"][0]["urls"][0], "b-0.3.0.tgz");
    }

    #[test]
    fn an_earlier_upstream_wins_over_a_later_one_for_the_same_version() {
        let first = vec![("c".to_owned(), vec![upstream_entry("c", "1.0.0", "first")])];
        let second = vec![(
            "c".to_owned(),
            vec![
                upstream_entry("c", "1.0.0", "second"),
                upstream_entry("c", "1.10.0", "second"),
            ],
        )];
        let text = merge_index(&[], &[&first, &second], SystemTime::UNIX_EPOCH).unwrap();
        let index: Value = serde_yaml_ng::from_str(&text).unwrap();
        let c = index["entries"]["c"].as_sequence().unwrap();
        assert_eq!(
            c[0]["version"], "1.10.0",
            "newest first by semver, not by text"
        );
        assert_eq!(c[1]["digest"], "first");
    }

    #[test]
    fn empty_repository_has_empty_entries() {
        let text = render_index(&[], SystemTime::UNIX_EPOCH).unwrap();
        let index: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert!(index["entries"].as_mapping().unwrap().is_empty());
    }
}
