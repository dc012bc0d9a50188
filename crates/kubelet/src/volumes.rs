//! Pod volumes on the node: emptyDir (disk, or tmpfs for `medium: Memory`),
//! hostPath (with its type checks), and the projected-file kinds (configMap,
//! secret, downwardAPI, projected), written the way upstream's atomic writer does
//! (a timestamped directory, the `..data` symlink switched in one rename, one
//! symlink per top-level entry) so running pods see updates whole.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, Volume};

use crate::env::{pod_field, resource_field};

/// Why a volume could not be set up (reported as a FailedMount event and keeps the
/// pod in ContainerCreating).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Filesystem operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A referenced object or key is missing, or a hostPath has the wrong type.
    #[error("{0}")]
    Invalid(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let what = what.into();
    move |source| VolumeError::Io { what, source }
}

/// Objects the projected volumes read, fetched by the caller.
#[derive(Default, Clone)]
pub struct VolumeSources {
    /// ConfigMaps by name (absent: not found).
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Service account tokens by [`token_key`] (audience, expiration).
    pub tokens: BTreeMap<(String, i64), String>,
}

/// Upstream's default lifetime of a projected service account token.
pub const DEFAULT_TOKEN_EXPIRATION: i64 = 3600;

/// The key a projected token is cached under: its audience (empty for the API's
/// default audiences) and requested lifetime.
pub fn token_key(audience: Option<&str>, expiration: Option<i64>) -> (String, i64) {
    (
        audience.unwrap_or_default().to_string(),
        expiration.unwrap_or(DEFAULT_TOKEN_EXPIRATION),
    )
}

/// The (audience, expiration) pairs of the pod's projected token sources.
pub fn token_requests(pod: &Pod) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|src| src.service_account_token.as_ref())
        .map(|t| token_key(t.audience.as_deref(), t.expiration_seconds))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Names of the ConfigMaps and Secrets the pod's volumes use.
pub fn referenced_objects(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if let Some(cm) = &v.config_map {
            cms.push(cm.name.clone());
        }
        if let Some(s) = &v.secret {
            secrets.extend(s.secret_name.clone());
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &src.config_map {
                cms.push(cm.name.clone());
            }
            if let Some(s) = &src.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// A file a projected volume holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    /// Bytes.
    pub data: Vec<u8>,
    /// Mode bits.
    pub mode: u32,
}

fn select(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    missing: &str,
    optional: bool,
) -> Result<BTreeMap<String, Payload>, VolumeError> {
    let mut out = BTreeMap::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(
                    k,
                    Payload {
                        data: v,
                        mode: default_mode,
                    },
                );
            }
        }
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(
                            it.path.clone(),
                            Payload {
                                data: v.clone(),
                                mode: it.mode.map_or(default_mode, |m| m as u32),
                            },
                        );
                    }
                    None if optional => {}
                    None => return Err(VolumeError::Invalid(format!("{missing}: {}", it.key))),
                }
            }
        }
    }
    Ok(out)
}

/// Upstream's messages for an item naming a key the object lacks.
const MISSING_CM_KEY: &str = "configmap references non-existent config key";
const MISSING_SECRET_KEY: &str = "references non-existent secret key";

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// The files of a configMap/secret/downwardAPI/projected volume; `Ok(None)` for
/// other kinds.
pub fn payload(
    pod: &Pod,
    v: &Volume,
    sources: &VolumeSources,
    node_name: &str,
    host_ip: &str,
    allocatable: &BTreeMap<String, apimachinery::Quantity>,
) -> Result<Option<BTreeMap<String, Payload>>, VolumeError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let downward = |items: &Vec<k8s_openapi::api::core::v1::DownwardAPIVolumeFile>, mode: u32| {
        let mut out = BTreeMap::new();
        for it in items {
            let value = if let Some(f) = &it.field_ref {
                pod_field(pod, &f.field_path, node_name, host_ip)
                    .map_err(|e| VolumeError::Invalid(e.0))?
            } else if let Some(r) = &it.resource_field_ref {
                let c = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter())
                    .find(|c| Some(&c.name) == r.container_name.as_ref())
                    .ok_or_else(|| {
                        VolumeError::Invalid(format!("container {:?} not found", r.container_name))
                    })?;
                resource_field(
                    c,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    allocatable,
                )
                .map_err(|e| VolumeError::Invalid(e.0))?
            } else {
                String::new()
            };
            out.insert(
                it.path.clone(),
                Payload {
                    data: value.into_bytes(),
                    mode: it.mode.map_or(mode, |m| m as u32),
                },
            );
        }
        Ok::<_, VolumeError>(out)
    };
    if let Some(cmv) = &v.config_map {
        let mode = cmv.default_mode.unwrap_or(0o644) as u32;
        let optional = cmv.optional.unwrap_or(false);
        return match sources.config_maps.get(&cmv.name) {
            Some(cm) => select(
                config_map_data(cm),
                cmv.items.as_ref(),
                mode,
                MISSING_CM_KEY,
                optional,
            )
            .map(Some),
            None if optional => Ok(Some(BTreeMap::new())),
            None => Err(VolumeError::Invalid(format!(
                "configmap \"{}\" not found",
                cmv.name
            ))),
        };
    }
    if let Some(sv) = &v.secret {
        let mode = sv.default_mode.unwrap_or(0o644) as u32;
        let optional = sv.optional.unwrap_or(false);
        let name = sv.secret_name.clone().unwrap_or_default();
        return match sources.secrets.get(&name) {
            Some(s) => select(
                secret_data(s),
                sv.items.as_ref(),
                mode,
                MISSING_SECRET_KEY,
                optional,
            )
            .map(Some),
            None if optional => Ok(Some(BTreeMap::new())),
            None => Err(VolumeError::Invalid(format!("secret \"{name}\" not found"))),
        };
    }
    if let Some(d) = &v.downward_api {
        let mode = d.default_mode.unwrap_or(0o644) as u32;
        return downward(d.items.as_ref().unwrap_or(&Vec::new()), mode).map(Some);
    }
    if let Some(p) = &v.projected {
        let mode = p.default_mode.unwrap_or(0o644) as u32;
        let mut out = BTreeMap::new();
        for src in p.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                let optional = cm.optional.unwrap_or(false);
                match sources.config_maps.get(&cm.name) {
                    Some(obj) => out.extend(select(
                        config_map_data(obj),
                        cm.items.as_ref(),
                        mode,
                        MISSING_CM_KEY,
                        optional,
                    )?),
                    None if optional => {}
                    None => {
                        return Err(VolumeError::Invalid(format!(
                            "configmap \"{}\" not found",
                            cm.name
                        )))
                    }
                }
            }
            if let Some(s) = &src.secret {
                let optional = s.optional.unwrap_or(false);
                match sources.secrets.get(&s.name) {
                    Some(obj) => out.extend(select(
                        secret_data(obj),
                        s.items.as_ref(),
                        mode,
                        MISSING_SECRET_KEY,
                        optional,
                    )?),
                    None if optional => {}
                    None => {
                        return Err(VolumeError::Invalid(format!(
                            "secret \"{}\" not found",
                            s.name
                        )))
                    }
                }
            }
            if let Some(d) = &src.downward_api {
                out.extend(downward(d.items.as_ref().unwrap_or(&Vec::new()), mode)?);
            }
            if let Some(t) = &src.service_account_token {
                let key = token_key(t.audience.as_deref(), t.expiration_seconds);
                let token = sources.tokens.get(&key).ok_or_else(|| {
                    VolumeError::Invalid(format!(
                        "failed to fetch token: no token for audience {:?} of service account in namespace {ns}",
                        t.audience.as_deref().unwrap_or("")
                    ))
                })?;
                out.insert(
                    t.path.clone(),
                    Payload {
                        data: token.clone().into_bytes(),
                        mode,
                    },
                );
            }
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// Writes `files` into `dir` atomically: a new `..<stamp>` directory, `..data`
/// switched to it by rename, a symlink per top-level name; old data removed.
/// Unchanged content is left alone (returns false).
pub fn write_atomic(dir: &Path, files: &BTreeMap<String, Payload>) -> Result<bool, VolumeError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link) {
        if same_content(&dir.join(&current), files) {
            return Ok(false);
        }
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let new_dir = dir.join(&stamp);
    for (path, p) in files {
        if path.split('/').any(|c| c == ".." || c.is_empty()) || path.starts_with('/') {
            return Err(VolumeError::Invalid(format!("invalid path {path:?}")));
        }
        let target = new_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&target, &p.data).map_err(io(format!("writing {}", target.display())))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(p.mode & 0o7777))
            .map_err(io(format!("chmod {}", target.display())))?;
    }
    std::fs::create_dir_all(&new_dir).map_err(io("creating data dir"))?;
    let old = std::fs::read_link(&data_link).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link).map_err(io("linking ..data_tmp"))?;
    std::fs::rename(&tmp_link, &data_link).map_err(io("switching ..data"))?;
    // User-visible names: one symlink per top-level entry.
    let tops: std::collections::BTreeSet<&str> = files
        .keys()
        .map(|k| k.split('/').next().unwrap_or(k))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), &link).map_err(io(format!("linking {top}")))?;
        }
    }
    // Names no longer present go away.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !tops.contains(name.as_str()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

fn same_content(dir: &Path, files: &BTreeMap<String, Payload>) -> bool {
    let mut count = 0;
    for (path, p) in files {
        match std::fs::read(dir.join(path)) {
            Ok(d) if d == p.data => count += 1,
            _ => return false,
        }
    }
    // Compare the number of regular files too (a key removed is a change).
    fn count_files(d: &Path) -> usize {
        std::fs::read_dir(d)
            .map(|es| {
                es.flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => count_files(&e.path()),
                        Ok(_) => 1,
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    count == count_files(dir)
}

/// Where a pod's volume lives on the host.
pub fn volume_dir(pod_dir: &Path, v: &Volume) -> PathBuf {
    let plugin = if v.empty_dir.is_some() {
        "kubernetes.io~empty-dir"
    } else if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else if v.downward_api.is_some() {
        "kubernetes.io~downward-api"
    } else if v.projected.is_some() {
        "kubernetes.io~projected"
    } else {
        "kubernetes.io~other"
    };
    pod_dir.join("volumes").join(plugin).join(&v.name)
}

fn is_mountpoint(path: &Path) -> bool {
    images::mount::is_mount_point(path).unwrap_or(false)
}

/// Sets up one volume; returns the host path to bind into containers.
pub fn set_up(
    pod_dir: &Path,
    v: &Volume,
    files: Option<&BTreeMap<String, Payload>>,
) -> Result<PathBuf, VolumeError> {
    if let Some(hp) = &v.host_path {
        let path = PathBuf::from(&hp.path);
        check_host_path(&path, hp.type_.as_deref().unwrap_or(""))?;
        return Ok(path);
    }
    let dir = volume_dir(pod_dir, v);
    if let Some(ed) = &v.empty_dir {
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        if ed.medium.as_deref() == Some("Memory") && !is_mountpoint(&dir) {
            let size = ed
                .size_limit
                .as_ref()
                .and_then(|q| q.0.parse::<apimachinery::Quantity>().ok())
                .map(|q| format!(",size={}", q.value()))
                .unwrap_or_default();
            nix::mount::mount(
                Some("tmpfs"),
                &dir,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some(format!("mode=0777{size}").as_str()),
            )
            .map_err(|e| VolumeError::Io {
                what: format!("mounting tmpfs at {}", dir.display()),
                source: e.into(),
            })?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(io("chmod emptyDir"))?;
        return Ok(dir);
    }
    if let Some(files) = files {
        // Secrets stay off disk, as upstream keeps them on tmpfs.
        let tmpfs = v.secret.is_some() || v.projected.is_some();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        if tmpfs && !is_mountpoint(&dir) {
            nix::mount::mount(
                Some("tmpfs"),
                &dir,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("mode=0755"),
            )
            .map_err(|e| VolumeError::Io {
                what: format!("mounting tmpfs at {}", dir.display()),
                source: e.into(),
            })?;
        }
        write_atomic(&dir, files)?;
        return Ok(dir);
    }
    Err(VolumeError::Invalid(format!(
        "volume {:?}: this volume type is not supported by ferrokube's kubelet yet",
        v.name
    )))
}

/// hostPath type checks, creating `DirectoryOrCreate`/`FileOrCreate`.
fn check_host_path(path: &Path, ty: &str) -> Result<(), VolumeError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path);
    let fail = |what: &str| {
        Err(VolumeError::Invalid(format!(
            "hostPath type check failed: {} is not a {what}",
            path.display()
        )))
    };
    match ty {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(path)
                    .map_err(io(format!("creating {}", path.display())))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                    .map_err(io("chmod"))?;
                return Ok(());
            }
            if meta.map(|m| m.is_dir()).unwrap_or(false) {
                Ok(())
            } else {
                fail("directory")
            }
        }
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => fail("directory"),
            Err(_) => Err(VolumeError::Invalid(format!(
                "hostPath type check failed: {} is not a directory",
                path.display()
            ))),
        },
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating parent"))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io(format!("creating {}", path.display())))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                    .map_err(io("chmod"))?;
                return Ok(());
            }
            if meta.map(|m| m.is_file()).unwrap_or(false) {
                Ok(())
            } else {
                fail("file")
            }
        }
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => fail("file"),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => fail("socket"),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => fail("character device"),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => fail("block device"),
        },
        other => Err(VolumeError::Invalid(format!(
            "unsupported hostPath type {other:?}"
        ))),
    }
}

/// Unmounts whatever is mounted under the pod's directory (tmpfs volumes), deepest
/// first, then removes the directory.
pub fn tear_down(pod_dir: &Path) -> Result<(), VolumeError> {
    let prefix = pod_dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if nix::mount::umount2(p.as_str(), nix::mount::MntFlags::empty()).is_err() {
            let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
    match std::fs::remove_dir_all(pod_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VolumeError::Io {
            what: format!("removing {}", pod_dir.display()),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn atomic_writes_switch_data_whole() {
        let dir = tempfile::tempdir().unwrap();
        let files = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Payload {
                            data: v.as_bytes().to_vec(),
                            mode: 0o644,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>()
        };
        assert!(write_atomic(dir.path(), &files(&[("a", "1"), ("sub/b", "2")])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "1");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/b")).unwrap(),
            "2"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        // Same content: nothing rewritten.
        assert!(!write_atomic(dir.path(), &files(&[("a", "1"), ("sub/b", "2")])).unwrap());
        // A change and a removal.
        assert!(write_atomic(dir.path(), &files(&[("a", "3")])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(dir.path().join("sub")).is_err());
        let stamps = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with("..") && e.file_name() != "..data"
            })
            .count();
        assert_eq!(stamps, 1, "old data is removed");
        assert!(write_atomic(dir.path(), &files(&[("../x", "1")])).is_err());
    }

    #[test]
    fn payloads_of_each_kind() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "32Mi"}}}], "volumes": [
                {"name": "cm", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "dir/k.txt", "mode": 0o600}]}},
                {"name": "sec", "secret": {"secretName": "s"}},
                {"name": "missing", "secret": {"secretName": "gone"}},
                {"name": "opt", "configMap": {"name": "gone", "optional": true}},
                {"name": "down", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}},
                {"name": "proj", "projected": {"sources": [{"configMap": {"name": "cfg"}}, {"secret": {"name": "s"}}]}}
            ]}
        }))
        .unwrap();
        let mut sources = VolumeSources::default();
        sources.config_maps.insert(
            "cfg".into(),
            serde_json::from_value(json!({"data": {"k": "v"}})).unwrap(),
        );
        sources.secrets.insert(
            "s".into(),
            serde_json::from_value(json!({"data": {"pw": "c2VjcmV0"}})).unwrap(),
        );
        assert_eq!(
            referenced_objects(&pod),
            (
                vec!["cfg".into(), "gone".into()],
                vec!["gone".into(), "s".into()]
            )
        );
        let vols = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
        let get = |i: usize| payload(&pod, &vols[i], &sources, "n", "192.0.2.1", &BTreeMap::new());
        let cm = get(0).unwrap().unwrap();
        assert_eq!(
            cm["dir/k.txt"],
            Payload {
                data: b"v".to_vec(),
                mode: 0o600
            }
        );
        assert_eq!(get(1).unwrap().unwrap()["pw"].data, b"secret");
        assert_eq!(get(2).unwrap_err().to_string(), "secret \"gone\" not found");
        assert!(get(3).unwrap().unwrap().is_empty());
        let down = get(4).unwrap().unwrap();
        assert_eq!(down["labels"].data, b"a=\"b\"");
        assert_eq!(down["mem"].data, b"32");
        let proj = get(5).unwrap().unwrap();
        assert_eq!(proj.keys().collect::<Vec<_>>(), ["k", "pw"]);
    }

    #[test]
    fn host_path_types() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("made");
        check_host_path(&d, "DirectoryOrCreate").unwrap();
        assert!(d.is_dir());
        check_host_path(&d, "Directory").unwrap();
        assert!(check_host_path(&d, "File").is_err());
        let f = dir.path().join("f/file");
        check_host_path(&f, "FileOrCreate").unwrap();
        check_host_path(&f, "File").unwrap();
        assert!(check_host_path(&dir.path().join("nope"), "Directory").is_err());
    }
}
