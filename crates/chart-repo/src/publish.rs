//! The publish endpoint, compatible with ChartMuseum's API, so that
//! `curl --data-binary @chart.tgz URL/api/charts` publishes a chart:
//!
//! - `POST /api/charts[?force]`: the body is a packaged chart; checked as the chart sources
//!   check archives, stored as `DIR/NAME-VERSION.tgz` and served at once (201
//!   `{"saved":true}`); 409 when that version is already in the directory (unless `?force`,
//!   which replaces a pushed archive but never a chart directory);
//! - `DELETE /api/charts/NAME/VERSION`: removes a pushed archive (200 `{"deleted":true}`);
//! - `GET /api/charts`: every chart's index entries, as JSON by name.
//!
//! The chart is the raw body, or the `chart` field of a multipart form (as ChartMuseum accepts
//! it and the helm cm-push plugin sends it; a `prov` field is ignored). Errors answer
//! `{"error": "..."}` as ChartMuseum does.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::server::{ServerState, snapshot};
use crate::{ChartRepo, Error, packaged_from_bytes};

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

fn refuse(status: StatusCode, message: impl std::fmt::Display) -> Response {
    reply(status, serde_json::json!({ "error": message.to_string() }))
}

/// Whether the query asks to replace an existing version: `?force`, `?force=true`.
fn forced(query: Option<&str>) -> bool {
    query.unwrap_or_default().split('&').any(|part| {
        let (key, value) = part.split_once('=').unwrap_or((part, "true"));
        key == "force" && !matches!(value, "false" | "0")
    })
}

/// Stores a pushed chart and serves it at once.
pub(crate) async fn publish(
    State(state): State<Arc<ServerState>>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let force = forced(query.as_deref());
    let body = match chart_of(&headers, body) {
        Ok(body) => body,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let limit = state.overlay.limits.max_archive_bytes;
    if body.len() as u64 > limit {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the chart archive ({} bytes) exceeds the limit of {limit} bytes",
                body.len()
            ),
        );
    }
    if body.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "no chart in the request body: send a packaged chart, e.g. curl --data-binary @NAME-VERSION.tgz URL/api/charts",
        );
    }
    let _one_at_a_time = state.publish.lock().await;
    let root = snapshot(&state.repo).root().to_path_buf();
    let checked = tokio::task::spawn_blocking(move || {
        packaged_from_bytes(
            body.to_vec(),
            std::path::Path::new("the pushed chart"),
            SystemTime::now(),
        )
    })
    .await;
    let chart = match checked {
        Ok(Ok(chart)) => chart,
        Ok(Err(error)) => return refuse(StatusCode::BAD_REQUEST, error),
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    if semver::Version::parse(&chart.version).is_err() {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "chart {} has version {:?}, which is not semantic versioning (e.g. 1.2.3) as Helm requires",
                chart.name, chart.version
            ),
        );
    }
    let file = chart.file_name();
    // Read the directory again: a chart added since the last snapshot counts too.
    let current = match fresh(&root).await {
        Ok(repo) => repo,
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    if let Some(existing) = current
        .charts()
        .iter()
        .find(|c| c.name == chart.name && c.version == chart.version)
    {
        if existing.dir.is_dir() {
            return refuse(
                StatusCode::CONFLICT,
                format!(
                    "{} {} is the chart directory {}: edit it there, or bump the pushed chart's version",
                    chart.name,
                    chart.version,
                    existing.dir.display()
                ),
            );
        }
        if !force {
            return refuse(
                StatusCode::CONFLICT,
                format!("{file} already exists; add ?force to replace it"),
            );
        }
    }
    if let Err(error) = crate::overlay::write_atomically(&root.join(&file), &chart.archive) {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, error);
    }
    if let Err(error) = reload(&state).await {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, error);
    }
    tracing::info!(chart = %chart.name, version = %chart.version, "chart published");
    reply(StatusCode::CREATED, serde_json::json!({ "saved": true }))
}

/// Removes a pushed chart.
pub(crate) async fn remove(
    State(state): State<Arc<ServerState>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let _one_at_a_time = state.publish.lock().await;
    let root = snapshot(&state.repo).root().to_path_buf();
    let current = match fresh(&root).await {
        Ok(repo) => repo,
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    let Some(existing) = current
        .charts()
        .iter()
        .find(|c| c.name == name && c.version == version)
    else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("no chart {name} version {version} in {}", root.display()),
        );
    };
    if existing.dir.is_dir() {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "{name} {version} is the chart directory {}: remove the directory itself",
                existing.dir.display()
            ),
        );
    }
    if let Err(error) = std::fs::remove_file(&existing.dir) {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("removing {}: {error}", existing.dir.display()),
        );
    }
    if let Err(error) = reload(&state).await {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, error);
    }
    tracing::info!(chart = %name, %version, "chart deleted");
    reply(StatusCode::OK, serde_json::json!({ "deleted": true }))
}

/// Every chart served (local and upstream), as ChartMuseum lists them: entries by name.
pub(crate) async fn list(State(state): State<Arc<ServerState>>) -> Response {
    crate::server::refresh(&state.repo).await;
    let index = match state.index().await {
        Ok(index) => index,
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    let parsed: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&index.yaml) {
        Ok(parsed) => parsed,
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    match serde_json::to_value(&parsed["entries"]) {
        Ok(entries) => reply(StatusCode::OK, entries),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error),
    }
}

async fn fresh(root: &std::path::Path) -> Result<ChartRepo, Error> {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || ChartRepo::from_dir(root))
        .await
        .unwrap_or_else(|e| {
            Err(Error::Read {
                path: "the chart directory".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
}

async fn reload(state: &ServerState) -> Result<(), Error> {
    let current = snapshot(&state.repo);
    let fresh = fresh(current.root())
        .await?
        .auto_reload(current.reloads_automatically());
    *state.repo.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
    Ok(())
}

/// The chart of a request: the body, or the `chart` field of a `multipart/form-data` body.
fn chart_of(headers: &axum::http::HeaderMap, body: Bytes) -> Result<Bytes, String> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("multipart/form-data") {
        return Ok(body);
    }
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("a multipart/form-data body without a boundary")?;
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter has no line break before it.
    let mut rest = body
        .strip_prefix(&delimiter.as_bytes()[2..])
        .ok_or("a multipart body that does not start with its boundary")?;
    while let Some(end) = find(rest, delimiter.as_bytes()) {
        let part = &rest[..end];
        rest = &rest[end + delimiter.len()..];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let part_headers = String::from_utf8_lossy(&part[..split]).to_ascii_lowercase();
        if part_headers.contains("name=\"chart\"") {
            let start = part.as_ptr() as usize - body.as_ptr() as usize + split + 4;
            return Ok(body.slice(start..start + part.len() - split - 4));
        }
    }
    Err("a multipart form without a `chart` field (send -F chart=@NAME-VERSION.tgz)".into())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::{chart_of, forced};

    #[test]
    fn the_chart_field_of_a_multipart_form_is_the_chart() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            "multipart/form-data; boundary=XyZ".parse().unwrap(),
        );
        let body = axum::body::Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"prov\"\r\n\r\nsig\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"chart\"; filename=\"a.tgz\"\r\n\
              Content-Type: application/octet-stream\r\n\r\n\x1f\x8b\r\nbytes\r\n--XyZ--\r\n",
        );
        assert_eq!(&chart_of(&headers, body).unwrap()[..], b"\x1f\x8b\r\nbytes");
        let without = axum::body::Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n--XyZ--\r\n",
        );
        assert!(
            chart_of(&headers, without)
                .unwrap_err()
                .contains("without a `chart` field")
        );
    }

    #[test]
    fn a_raw_body_is_the_chart() {
        let body = axum::body::Bytes::from_static(b"raw");
        assert_eq!(
            &chart_of(&axum::http::HeaderMap::new(), body).unwrap()[..],
            b"raw"
        );
    }

    #[test]
    fn force_is_asked_by_the_bare_key_or_a_true_value() {
        assert!(forced(Some("force")));
        assert!(forced(Some("a=1&force=true")));
        assert!(!forced(Some("force=false")));
        assert!(!forced(Some("forced")));
        assert!(!forced(None));
    }
}
