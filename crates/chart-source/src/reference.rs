//! Parsing the `chart` field of a HelmRelease into the kind of source it names (pure).

use crate::Error;

/// What a chart reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChartRef {
    /// `ALIAS/NAME`: a configured repository.
    Alias { alias: String, name: String },
    /// `oci://HOST[:PORT]/PATH/NAME[:TAG][@sha256:HEX]`: `namespace` is `PATH` (may be empty).
    Oci {
        registry: String,
        namespace: String,
        name: String,
        pin: Option<OciPin>,
    },
    /// `https://HOST/PATH/NAME`: `repo_url` is `https://HOST/PATH`.
    Http { repo_url: String, name: String },
    /// `file:PATH`
    File { path: String },
    /// `git+SCHEME://HOST/PATH@DIR?ref=REF`: `repo_url` is `git+SCHEME://HOST/PATH`, `dir` the
    /// chart's directory in the repository (empty: its root), `git_ref` a branch, tag,
    /// `refs/…` or commit (`None`: the remote's `HEAD`).
    Git {
        repo_url: String,
        dir: String,
        git_ref: Option<String>,
    },
}

/// What an `oci://` reference names besides the chart: a tag, or a manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OciPin {
    /// `NAME:TAG`: the manifest the tag points at now (re-resolved by the caller).
    Tag(String),
    /// `NAME@sha256:HEX` (or `NAME:TAG@sha256:HEX`, the tag then only checked against the
    /// chart's version): exactly that manifest, its content checked against the digest.
    Digest { digest: String, tag: Option<String> },
}

/// OCI tags, as the distribution spec allows them: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `sha256:` and 64 lowercase hex digits.
pub(crate) fn valid_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(crate::cache::is_sha256_hex)
}

/// Splits the last segment of an `oci://` reference into the chart name and its pin.
fn split_pin(reference: &str, last: &str) -> Result<(String, Option<OciPin>), Error> {
    let (before_digest, digest) = match last.split_once('@') {
        Some((before, digest)) => (before, Some(digest)),
        None => (last, None),
    };
    let (name, tag) = match before_digest.split_once(':') {
        Some((name, tag)) => (name, Some(tag)),
        None => (before_digest, None),
    };
    if let Some(tag) = tag
        && !valid_tag(tag)
    {
        return Err(invalid(
            reference,
            format!("{tag:?} is not an OCI tag (letters, digits, '_', '.', '-'; at most 128)"),
        ));
    }
    let pin = match digest {
        Some(digest) if !valid_sha256_digest(digest) => {
            return Err(invalid(
                reference,
                format!(
                    "{digest:?} is not a manifest digest (expected sha256: and 64 lowercase hex digits)"
                ),
            ));
        }
        Some(digest) => Some(OciPin::Digest {
            digest: digest.to_owned(),
            tag: tag.map(str::to_owned),
        }),
        None => tag.map(|tag| OciPin::Tag(tag.to_owned())),
    };
    Ok((name.to_owned(), pin))
}

/// Chart names are one path segment of letters, digits, `-`, `_` and `.`, never `.` or `..`.
pub(crate) fn valid_chart_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 250
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The reference is echoed without user info or query, in case someone put a credential there.
fn invalid(reference: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference {
        reference: crate::error::redact_url(reference),
        reason: reason.into(),
    }
}

fn check_name(reference: &str, name: &str) -> Result<(), Error> {
    if name.contains(':') || name.contains('@') {
        return Err(invalid(
            reference,
            "only oci:// references take a tag or digest; put the version in `version`",
        ));
    }
    if !valid_chart_name(name) {
        return Err(invalid(
            reference,
            format!(
                "{name:?} is not a chart name (one path segment of letters, digits, '-', '_', '.')"
            ),
        ));
    }
    Ok(())
}

/// Parses a chart reference. Only syntax is checked here; whether the repository is allowed is
/// decided by the caller against the configuration.
pub(crate) fn parse(reference: &str) -> Result<ChartRef, Error> {
    let trimmed = reference.trim();
    if trimmed.is_empty() {
        return Err(invalid(reference, "the chart reference is empty"));
    }
    if let Some(path) = trimmed.strip_prefix("file:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(invalid(reference, "`file:` needs a path"));
        }
        return Ok(ChartRef::File {
            path: path.to_owned(),
        });
    }
    if let Some(rest) = trimmed.strip_prefix("oci://") {
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
            return Err(invalid(
                reference,
                "expected oci://HOST[:PORT]/PATH/NAME with no empty path segment",
            ));
        }
        let registry = segments[0];
        check_host(reference, registry)?;
        let (name, pin) = split_pin(reference, segments[segments.len() - 1])?;
        check_name(reference, &name)?;
        let namespace = segments[1..segments.len() - 1].join("/");
        if segments.iter().any(|s| *s == "." || *s == "..") {
            return Err(invalid(
                reference,
                "`.` and `..` are not allowed in the path",
            ));
        }
        return Ok(ChartRef::Oci {
            registry: registry.to_owned(),
            namespace,
            name,
            pin,
        });
    }
    if trimmed.starts_with("git+") {
        return parse_git(reference, trimmed);
    }
    if trimmed.starts_with("https://") || trimmed.starts_with("http://") {
        let url = reqwest::Url::parse(trimmed)
            .map_err(|e| invalid(reference, format!("not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                &crate::error::redact_url(trimmed),
                "credentials in the URL are refused; configure the repository with a credentials Secret",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                &crate::error::redact_url(trimmed),
                "a query or fragment is not allowed",
            ));
        }
        let Some((repo, name)) = trimmed.trim_end_matches('/').rsplit_once('/') else {
            return Err(invalid(reference, "expected REPOSITORY_URL/NAME"));
        };
        if repo.ends_with('/') || repo.ends_with(':') {
            return Err(invalid(reference, "expected REPOSITORY_URL/NAME"));
        }
        check_name(reference, name)?;
        return Ok(ChartRef::Http {
            repo_url: repo.to_owned(),
            name: name.to_owned(),
        });
    }
    if trimmed.contains("://") {
        return Err(invalid(
            reference,
            "only oci://, https://, http://, git+https://, git+http://, git+ssh:// and file: references are supported",
        ));
    }
    let Some((alias, name)) = trimmed.split_once('/') else {
        return Err(invalid(
            reference,
            "expected ALIAS/NAME, oci://HOST/PATH/NAME, https://HOST/PATH/NAME or file:PATH",
        ));
    };
    if alias.is_empty() {
        return Err(invalid(reference, "the repository alias is empty"));
    }
    check_name(reference, name)?;
    Ok(ChartRef::Alias {
        alias: alias.to_owned(),
        name: name.to_owned(),
    })
}

/// `git+SCHEME://[USER@]HOST[:PORT]/PATH[@DIR][?ref=REF]`, as the helm-git plugin writes them
/// (its `sparse=` parameter is accepted and ignored: the fetch is always shallow).
fn parse_git(reference: &str, trimmed: &str) -> Result<ChartRef, Error> {
    let scheme_end = trimmed
        .find("://")
        .ok_or_else(|| invalid(reference, "expected git+https://HOST/PATH@DIR?ref=REF"))?;
    let scheme = &trimmed["git+".len()..scheme_end];
    if !matches!(scheme, "https" | "http" | "ssh") {
        return Err(invalid(
            reference,
            format!(
                "git references use git+https://, git+http:// or git+ssh://, not git+{scheme}://"
            ),
        ));
    }
    let after = &trimmed[scheme_end + 3..];
    let (before_query, query) = match after.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (after, None),
    };
    let Some((authority, path)) = before_query.split_once('/') else {
        return Err(invalid(
            reference,
            "expected git+SCHEME://HOST/PATH@DIR?ref=REF",
        ));
    };
    let user_info = authority.rsplit_once('@').map(|(user, _)| user);
    if user_info.is_some_and(|user| user.contains(':')) || (scheme != "ssh" && user_info.is_some())
    {
        return Err(invalid(
            &crate::error::redact_url(trimmed),
            "credentials in the URL are refused; configure the repository with a credentials Secret",
        ));
    }
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    check_host(reference, host)?;
    let (repo_path, dir) = match path.split_once('@') {
        Some((repo_path, dir)) => (repo_path, dir.trim_end_matches('/')),
        None => (path, ""),
    };
    let repo_path = repo_path.trim_end_matches('/');
    if repo_path.is_empty()
        || repo_path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || !repo_path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~'))
    {
        return Err(invalid(
            reference,
            "the repository path must be segments of letters, digits, '.', '_', '-', '~'",
        ));
    }
    if !dir.is_empty()
        && (dir
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            || !dir
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-')))
    {
        return Err(invalid(
            reference,
            "the chart directory after @ must be path segments of letters, digits, '.', '_', '-' (no `..`)",
        ));
    }
    let mut git_ref = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("ref", value)) if crate::git::valid_ref(value) => {
                git_ref = Some(value.to_owned());
            }
            Some(("ref", value)) => {
                return Err(invalid(
                    reference,
                    format!("{value:?} is not a git ref (a branch, tag, refs/… or commit)"),
                ));
            }
            Some(("sparse", _)) => {}
            _ => {
                return Err(invalid(
                    &crate::error::redact_url(trimmed),
                    "only the ref= parameter is supported after ?",
                ));
            }
        }
    }
    Ok(ChartRef::Git {
        repo_url: format!("git+{scheme}://{authority}/{repo_path}"),
        dir: dir.to_owned(),
        git_ref,
    })
}

fn check_host(reference: &str, host: &str) -> Result<(), Error> {
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            reference,
            format!("{host:?} is not a registry host"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use upstart_failure::MetricLabel;

    #[test]
    fn alias_references_split_into_alias_and_name() {
        assert_eq!(
            parse("upstart-charts/postgres").unwrap(),
            ChartRef::Alias {
                alias: "upstart-charts".into(),
                name: "postgres".into()
            }
        );
    }

    #[test]
    fn oci_references_split_into_registry_namespace_and_name() {
        assert_eq!(
            parse("oci://127.0.0.1:5000/team/charts/redis").unwrap(),
            ChartRef::Oci {
                registry: "127.0.0.1:5000".into(),
                namespace: "team/charts".into(),
                name: "redis".into(),
                pin: None,
            }
        );
        assert_eq!(
            parse("oci://registry.example.com/redis").unwrap(),
            ChartRef::Oci {
                registry: "registry.example.com".into(),
                namespace: String::new(),
                name: "redis".into(),
                pin: None,
            }
        );
    }

    #[test]
    fn oci_references_may_name_a_tag_a_digest_or_both() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let pin = |reference: &str| match parse(reference).unwrap() {
            ChartRef::Oci { name, pin, .. } => (name, pin),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            pin("oci://127.0.0.1:5000/charts/redis:1.2.3_build.4"),
            ("redis".into(), Some(OciPin::Tag("1.2.3_build.4".into())))
        );
        assert_eq!(
            pin(&format!("oci://127.0.0.1:5000/charts/redis@{digest}")),
            (
                "redis".into(),
                Some(OciPin::Digest {
                    digest: digest.clone(),
                    tag: None
                })
            )
        );
        assert_eq!(
            pin(&format!("oci://host/redis:1.0.0@{digest}")),
            (
                "redis".into(),
                Some(OciPin::Digest {
                    digest,
                    tag: Some("1.0.0".into())
                })
            )
        );
    }

    #[test]
    fn https_references_are_a_repository_url_plus_name() {
        assert_eq!(
            parse("https://charts.example.com/stable/redis").unwrap(),
            ChartRef::Http {
                repo_url: "https://charts.example.com/stable".into(),
                name: "redis".into()
            }
        );
    }

    #[test]
    fn git_references_split_into_repository_directory_and_ref() {
        assert_eq!(
            parse("git+https://git.example.com/team/charts.git@charts/app?ref=main").unwrap(),
            ChartRef::Git {
                repo_url: "git+https://git.example.com/team/charts.git".into(),
                dir: "charts/app".into(),
                git_ref: Some("main".into()),
            }
        );
        assert_eq!(
            parse("git+ssh://git@git.example.com:2222/charts@app/?sparse=0").unwrap(),
            ChartRef::Git {
                repo_url: "git+ssh://git@git.example.com:2222/charts".into(),
                dir: "app".into(),
                git_ref: None,
            }
        );
        assert_eq!(
            parse("git+http://127.0.0.1:9418/r.git").unwrap(),
            ChartRef::Git {
                repo_url: "git+http://127.0.0.1:9418/r.git".into(),
                dir: String::new(),
                git_ref: None,
            }
        );
    }

    #[test]
    fn git_references_with_credentials_traversal_or_odd_refs_are_refused() {
        for bad in [
            "git+https://robot:hunter2@h/r.git@app",
            "git+https://robot@h/r.git@app",
            "git+ssh://git:hunter2@h/r.git@app",
            "git+ftp://h/r.git@app",
            "git+file:///etc@app",
            "git+https://h/r.git@../app",
            "git+https://h/../r.git@app",
            "git+https://h/r.git@app?ref=-upload-pack=x",
            "git+https://h/r.git@app?ref=main~1",
            "git+https://h/r.git@app?token=hunter2",
            "git+https://h",
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.metric_label(), "invalid_reference", "{bad}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn file_references_keep_their_path() {
        assert_eq!(
            parse("file:charts/postgres").unwrap(),
            ChartRef::File {
                path: "charts/postgres".into()
            }
        );
    }

    #[test]
    fn chart_names_with_path_segments_or_tags_are_refused() {
        for bad in [
            "alias/a/b",
            "alias/..",
            "alias/",
            "/name",
            "alias/name:1.0.0",
            "https://host/charts/name@sha256:0",
            "oci://host/charts/name:",
            "oci://host/charts/name:-x",
            "oci://host/charts/name@sha256:abc",
            "oci://host/charts/name@md5:0123",
            "oci://host//name",
            "oci://host/../name",
            "https://user:pw@host/charts/x",
            "https://host/charts/x?token=1",
            "ftp://host/x",
            "noslash",
            "",
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.metric_label(), "invalid_reference", "{bad}: {error}");
        }
    }

    #[test]
    fn refused_url_credentials_do_not_appear_in_the_error() {
        let error = parse("https://user:hunter2@host/charts/x")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("credentials in the URL are refused"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        let error = parse("https://host/charts/x?token=hunter2")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
