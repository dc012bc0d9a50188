//! Pod networking through standard CNI plugins (`--cni-conf-dir`, `--cni-bin-dir`),
//! instead of the built-in bridge: the first network configuration of the
//! directory (`.conflist`, or a single plugin's `.conf`/`.json`, in name order) is
//! run plugin by plugin on ADD, each given the previous one's result, and in
//! reverse on DEL, per the CNI specification. The configuration and result of a
//! pod's ADD are kept in its directory (`cni-result.json`): DEL uses them, and a
//! restarted kubelet takes the pod's address from them instead of adding the
//! network twice.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::Shared;

/// The interface plugins make in the pod.
const IFNAME: &str = "eth0";
/// Where a pod's ADD is remembered, in its directory.
const CACHE: &str = "cni-result.json";

/// The network configuration list of `dir`: the first `.conflist`, `.conf` or
/// `.json` file by name; a single plugin's configuration becomes a list of one.
pub(crate) fn load(dir: &Path) -> Result<Value, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "conflist" | "conf" | "json"))
        })
        .collect();
    files.sort();
    let file = files
        .first()
        .ok_or_else(|| format!("no networks found in {}", dir.display()))?;
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", file.display()))?;
    if v.get("plugins").is_some() {
        return Ok(v);
    }
    // A single plugin's configuration.
    Ok(json!({
        "cniVersion": v.get("cniVersion").cloned().unwrap_or(json!("1.0.0")),
        "name": v.get("name").cloned().unwrap_or(json!("")),
        "plugins": [v],
    }))
}

/// What every plugin call of one pod shares.
struct Call<'a> {
    bin_dirs: &'a [PathBuf],
    container_id: &'a str,
    netns: &'a Path,
    args: String,
}

impl Call<'_> {
    /// Runs one plugin with `command` and its configuration; its result on success.
    fn run(&self, command: &str, conf: &Value) -> Result<Value, String> {
        let ty = conf["type"]
            .as_str()
            .ok_or_else(|| "a plugin configuration has no type".to_string())?;
        let bin = self
            .bin_dirs
            .iter()
            .map(|d| d.join(ty))
            .find(|p| p.exists())
            .ok_or_else(|| format!("failed to find plugin {ty:?} in path {:?}", self.bin_dirs))?;
        let path = std::env::join_paths(self.bin_dirs).map_err(|e| e.to_string())?;
        let mut child = Command::new(&bin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", self.container_id)
            .env("CNI_NETNS", self.netns)
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(conf.to_string().as_bytes())
                .map_err(|e| format!("writing to {}: {e}", bin.display()))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        let parsed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            let msg = parsed["msg"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
            return Err(format!("plugin type={ty:?} failed ({command}): {msg}"));
        }
        Ok(parsed)
    }
}

/// One plugin's configuration as the list runs it: the list's name and version,
/// and the previous plugin's result.
fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    conf
}

/// The pod's first address in a CNI result.
fn address_of(result: &Value) -> Option<IpAddr> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .next()
}

fn call<'a>(shared: &'a Shared, pod: &Pod, uid: &'a str, netns: &'a Path) -> Call<'a> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    Call {
        bin_dirs: &shared.config.cni_bin_dir,
        container_id: uid,
        netns,
        args: format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={uid};K8S_POD_UID={uid}"
        ),
    }
}

/// Adds the pod's network namespace `netns` to the configured network and returns
/// its address; a pod added before (by an earlier kubelet) keeps its address.
pub(crate) fn connect(
    shared: &Shared,
    pod: &Pod,
    uid: &str,
    netns: &Path,
    pod_dir: &Path,
) -> Result<IpAddr, String> {
    let cache = pod_dir.join(CACHE);
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some(ip) = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| address_of(&v["result"]))
        {
            return Ok(ip);
        }
    }
    let dir = shared
        .config
        .cni_conf_dir
        .as_deref()
        .ok_or_else(|| "no CNI configuration directory".to_string())?;
    let list = load(dir).map_err(|e| format!("network is not ready: {e}"))?;
    let c = call(shared, pod, uid, netns);
    let mut prev: Option<Value> = None;
    for plugin in list["plugins"].as_array().into_iter().flatten() {
        match c.run("ADD", &plugin_conf(&list, plugin, prev.as_ref())) {
            Ok(result) => prev = Some(result),
            Err(e) => {
                // Undo what the earlier plugins did.
                let _ = del(&c, &list, prev.as_ref());
                return Err(e);
            }
        }
    }
    let result = prev.unwrap_or(Value::Null);
    let ip = address_of(&result)
        .ok_or_else(|| format!("the network {} gave the pod no address", list["name"]))?;
    let record = json!({"config": list, "result": result});
    std::fs::write(&cache, record.to_string())
        .map_err(|e| format!("writing {}: {e}", cache.display()))?;
    Ok(ip)
}

fn del(c: &Call, list: &Value, result: Option<&Value>) -> Result<(), String> {
    let mut first_err = None;
    let plugins: Vec<&Value> = list["plugins"].as_array().into_iter().flatten().collect();
    for plugin in plugins.into_iter().rev() {
        if let Err(e) = c.run("DEL", &plugin_conf(list, plugin, result)) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Removes the pod from the network it was added to (its address goes back to the
/// plugin's IPAM), with the configuration and result of its ADD. A pod never added
/// has nothing to remove.
pub(crate) fn disconnect(shared: &Shared, pod: &Pod, uid: &str, netns: &Path, pod_dir: &Path) {
    let cache = pod_dir.join(CACHE);
    let Ok(text) = std::fs::read_to_string(&cache) else {
        return;
    };
    let Ok(record) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    let c = call(shared, pod, uid, netns);
    match del(&c, &record["config"], Some(&record["result"])) {
        Ok(()) => {
            let _ = std::fs::remove_file(&cache);
        }
        Err(e) => tracing::warn!(error = %e, uid, "removing the pod from its CNI network failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_first_network_and_wraps_single_plugins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("20-b.conf"),
            r#"{"cniVersion": "0.4.0", "name": "b", "type": "bridge"}"#,
        )
        .unwrap();
        let list = load(dir.path()).unwrap();
        assert_eq!(list["name"], "b");
        assert_eq!(list["plugins"][0]["type"], "bridge");
        std::fs::write(
            dir.path().join("10-a.conflist"),
            r#"{"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("05-notes.txt"), "ignored").unwrap();
        let list = load(dir.path()).unwrap();
        assert_eq!(list["name"], "a");
        assert_eq!(list["plugins"].as_array().unwrap().len(), 2);
        let conf = plugin_conf(&list, &list["plugins"][1], Some(&json!({"ips": []})));
        assert_eq!(conf["name"], "a");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(conf["prevResult"], json!({"ips": []}));
    }

    #[test]
    fn the_address_comes_from_the_result() {
        let r = json!({"ips": [{"address": "10.88.0.7/16", "gateway": "10.88.0.1"}]});
        assert_eq!(address_of(&r), Some("10.88.0.7".parse().unwrap()));
        assert_eq!(address_of(&json!({})), None);
    }

    #[test]
    fn a_missing_plugin_is_an_error() {
        let c = Call {
            bin_dirs: &[PathBuf::from("/nonexistent")],
            container_id: "x",
            netns: Path::new("/nonexistent"),
            args: String::new(),
        };
        let err = c.run("ADD", &json!({"type": "bridge"})).unwrap_err();
        assert!(err.contains("failed to find plugin"), "{err}");
    }
}
