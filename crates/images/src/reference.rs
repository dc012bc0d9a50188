//! Image references as users write them (`busybox`, `quay.io/x/y:1`, `name@sha256:...`),
//! parsed and normalised the way Docker and containerd do: a missing registry means
//! docker.io, single-component docker.io names live under `library/`, and a reference
//! with neither tag nor digest means `:latest`.

use std::fmt;

use crate::digest::is_sha256_digest;
use crate::Error;

/// Registry assumed when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any: `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path inside the registry: `library/busybox`.
    pub repository: String,
    /// Tag; `latest` when the reference had neither tag nor digest.
    pub tag: Option<String>,
    /// Manifest digest (`sha256:<hex>`) when the reference pins one.
    pub digest: Option<String>,
}

impl Reference {
    /// Full repository name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `name:tag` when the reference has a tag.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{}", self.name(), t))
    }

    /// `name@digest` when the reference has a digest.
    pub fn digested_name(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|d| format!("{}@{}", self.name(), d))
    }

    /// The short form Docker prints: `busybox:latest`, `quay.io/x/y:1`.
    pub fn familiar_string(&self) -> String {
        let mut out = if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference, Error> {
        normalize_reference(s)
    }
}

fn invalid(reference: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// Parses `reference` and normalises it as Docker does: `busybox` becomes
/// `docker.io/library/busybox:latest`, `localhost:5000/x` becomes `localhost:5000/x:latest`,
/// `name@sha256:...` keeps its digest and gets no tag.
pub fn normalize_reference(reference: &str) -> Result<Reference, Error> {
    let mut r = parse_reference(reference)?;
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some(DEFAULT_TAG.to_string());
    }
    Ok(r)
}

/// Parses and normalises the repository part but adds no default tag.
pub(crate) fn parse_reference(reference: &str) -> Result<Reference, Error> {
    const FORMAT: &str = "invalid reference format";
    if reference.is_empty() {
        return Err(invalid(reference, FORMAT));
    }
    if reference.len() == 64 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            reference,
            format!(
                "invalid repository name ({reference}), cannot specify 64-byte hexadecimal strings"
            ),
        ));
    }
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        if !d.starts_with("sha256:") {
            return Err(invalid(reference, "unsupported digest algorithm"));
        }
        if !is_sha256_digest(d) {
            return Err(invalid(reference, "invalid checksum digest format"));
        }
    }
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(i) if !name_and_tag[i + 1..].contains('/') => {
            (&name_and_tag[..i], Some(&name_and_tag[i + 1..]))
        }
        _ => (name_and_tag, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(invalid(reference, FORMAT));
        }
    }
    if name.is_empty() {
        return Err(invalid(reference, FORMAT));
    }

    let (registry, mut repository) = split_registry(name);
    if registry == DEFAULT_REGISTRY && !repository.contains('/') {
        repository = format!("{OFFICIAL_REPO_PREFIX}{repository}");
    }
    if repository.to_ascii_lowercase() != repository {
        return Err(invalid(
            reference,
            format!("{FORMAT}: repository name ({repository}) must be lowercase"),
        ));
    }
    if !valid_registry(&registry) || !repository.split('/').all(valid_path_component) {
        return Err(invalid(reference, FORMAT));
    }
    if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
        return Err(invalid(
            reference,
            "repository name must not be more than 255 characters",
        ));
    }
    Ok(Reference {
        registry,
        repository,
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

/// Splits `name` into registry and repository: the first component is a registry when
/// it contains `.` or `:`, is `localhost`, or has upper-case letters.
fn split_registry(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_ascii_lowercase() != first =>
        {
            let registry = if first == LEGACY_DEFAULT_REGISTRY {
                DEFAULT_REGISTRY
            } else {
                first
            };
            (registry.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    }
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|s| s == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `host[:port]` where host is dotted DNS labels or a bracketed IPv6 address.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(p) => ("", Some(p)),
                None => return false,
            },
        }
    } else {
        match registry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if registry.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        normalize_reference(s).unwrap().to_string()
    }

    fn reason(s: &str) -> String {
        match normalize_reference(s) {
            Err(Error::InvalidReference { reason, .. }) => reason,
            other => panic!("expected InvalidReference for {s:?}, got {other:?}"),
        }
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/library/busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(
            norm("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(norm("localhost/foo"), "localhost/foo:latest");
        assert_eq!(norm("localhost:5000/foo:1"), "localhost:5000/foo:1");
        assert_eq!(norm("127.0.0.1:5000/x/y:tag"), "127.0.0.1:5000/x/y:tag");
        assert_eq!(norm("quay.io/a/b/c"), "quay.io/a/b/c:latest");
        assert_eq!(norm("[::1]:5000/x:v"), "[::1]:5000/x:v");
        assert_eq!(norm("Registry/foo"), "Registry/foo:latest");
        assert_eq!(norm("a-b.c-d/e"), "a-b.c-d/e:latest");
        assert_eq!(norm("a/b---c_d.e"), "docker.io/a/b---c_d.e:latest");
        assert_eq!(norm("a/b--c__d"), "docker.io/a/b--c__d:latest");
    }

    #[test]
    fn digests() {
        let r = normalize_reference(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = normalize_reference(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{D}"));
        assert_eq!(r.familiar_string(), format!("busybox:1@{D}"));
        assert_eq!(
            reason("busybox@sha256:abc"),
            "invalid checksum digest format"
        );
        assert_eq!(
            reason(&format!("busybox@md5:{}", &D[7..])),
            "unsupported digest algorithm"
        );
    }

    #[test]
    fn familiar() {
        let f = |s: &str| normalize_reference(s).unwrap().familiar_string();
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("docker.io/foo/bar:1"), "foo/bar:1");
        assert_eq!(f("quay.io/library/x:1"), "quay.io/library/x:1");
    }

    #[test]
    fn rejects() {
        assert_eq!(reason(""), "invalid reference format");
        assert_eq!(
            reason("Busybox"),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            reason(&D[7..]),
            format!(
                "invalid repository name ({}), cannot specify 64-byte hexadecimal strings",
                &D[7..]
            )
        );
        for bad in [
            "busybox:",
            "busybox:-x",
            ":tag",
            "foo//bar",
            "foo/bar/",
            "-foo",
            "foo_",
            "foo..bar",
            "a/b/c:t@",
            "reg.io:/x",
            "reg.io:50a/x",
            "[::1/x",
            "a b",
            "a/b___c",
            "a/b.-c",
            "a_b.io/c",
            "a/b-_c",
        ] {
            assert!(
                normalize_reference(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        let long = format!("x/{}", "a".repeat(260));
        assert_eq!(
            reason(&long),
            "repository name must not be more than 255 characters"
        );
        let long_tag = format!("x:{}", "a".repeat(129));
        assert!(normalize_reference(&long_tag).is_err());
    }
}
