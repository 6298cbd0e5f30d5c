//! Image references for the `imageDigest` helper (pure): `REGISTRY/REPOSITORY:TAG` is checked
//! here, offline, and resolved to `REGISTRY/REPOSITORY@sha256:…` by the operator, which puts
//! the answer in [`ExpressionContext::images`](crate::ExpressionContext::images).

/// An image reference as `imageDigest` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host, with its port if any (`registry.example.com`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository path on the registry (`team/api`).
    pub repository: String,
    /// The tag, when there is one.
    pub tag: Option<String>,
    /// The manifest digest (`sha256:…`), when the reference is already pinned.
    pub digest: Option<String>,
}

impl ImageRef {
    /// `REGISTRY/REPOSITORY@DIGEST`: what `imageDigest` writes for a resolved `digest`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }
}

/// Parses `REGISTRY/REPOSITORY:TAG` (or `…@sha256:HEX`, `…:TAG@sha256:HEX`). The registry must
/// be written out (a host with a `.` or a port, or `localhost`): a short Docker Hub name would
/// otherwise resolve somewhere the reader of the values does not see. The reason never quotes
/// more than the reference itself.
pub fn parse_image(text: &str) -> Result<ImageRef, String> {
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest
        && !is_sha256_digest(digest)
    {
        return Err(format!(
            "{digest:?} is not a manifest digest (sha256: and 64 lowercase hex digits)"
        ));
    }
    let Some((registry, path)) = rest.split_once('/') else {
        return Err(format!(
            "expected REGISTRY/REPOSITORY:TAG: write the registry out (e.g. docker.io/library/{text})"
        ));
    };
    if !(registry.contains('.') || registry.contains(':') || registry == "localhost")
        || !registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Err(format!(
            "{registry:?} is not a registry host: write the registry out (e.g. docker.io/library/{path})"
        ));
    }
    // The port, if any, was the registry's: a `:` in the path starts the tag.
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
        _ => (path, None),
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if !repository.split('/').all(component_ok) {
        return Err(format!(
            "{repository:?} is not a repository path (lowercase letters, digits, '.', '_', '-', separated by '/')"
        ));
    }
    if let Some(tag) = tag {
        let mut bytes = tag.bytes();
        let valid = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag.len() <= 128
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(format!(
                "{tag:?} is not a tag (letters, digits, '_', '.', '-'; at most 128)"
            ));
        }
    }
    if tag.is_none() && digest.is_none() {
        return Err(format!(
            "{text:?} names no tag: write REGISTRY/REPOSITORY:TAG (imageDigest pins a tag to its digest)"
        ));
    }
    Ok(ImageRef {
        registry: registry.to_owned(),
        repository: repository.to_owned(),
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
    })
}

fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    #[test]
    fn a_tagged_image_splits_into_registry_repository_and_tag() {
        let image = parse_image("127.0.0.1:5000/team/api:1.4.0").unwrap();
        assert_eq!(image.registry, "127.0.0.1:5000");
        assert_eq!(image.repository, "team/api");
        assert_eq!(image.tag.as_deref(), Some("1.4.0"));
        assert_eq!(image.digest, None);
        let digest = format!("sha256:{}", "0a".repeat(32));
        assert_eq!(
            image.pinned(&digest),
            format!("127.0.0.1:5000/team/api@{digest}")
        );
    }

    #[test]
    fn a_pinned_image_keeps_its_digest() {
        let digest = format!("sha256:{}", "0a".repeat(32));
        let image = parse_image(&format!("registry.example.com/api:1@{digest}")).unwrap();
        assert_eq!(image.repository, "api");
        assert_eq!(image.digest.as_deref(), Some(digest.as_str()));
        let image = parse_image(&format!("localhost/api@{digest}")).unwrap();
        assert_eq!(image.tag, None);
    }

    #[test]
    fn images_without_registry_tag_or_with_bad_parts_are_refused_with_the_form_to_write() {
        for (bad, says) in [
            ("nginx:1.25", "write the registry out"),
            ("library/nginx:1.25", "write the registry out"),
            ("registry.example.com/api", "names no tag"),
            ("registry.example.com/API:1", "not a repository path"),
            ("registry.example.com//api:1", "not a repository path"),
            ("registry.example.com/api:-1", "not a tag"),
            (
                "registry.example.com/api@sha256:abc",
                "not a manifest digest",
            ),
            ("api", "expected REGISTRY/REPOSITORY:TAG"),
        ] {
            let error = parse_image(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
