//! What the kubelet reports about the machine: capacity (cpu, memory,
//! ephemeral-storage, pods), allocatable (capacity minus reservations and the
//! hard eviction threshold), nodeInfo, and the hostname.

use std::collections::BTreeMap;
use std::path::Path;

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::NodeSystemInfo;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// The kubelet version reported in nodeInfo (the API level ferrokube serves).
pub const KUBELET_VERSION: &str = "v1.33.0";

/// Upstream's default hard eviction threshold for memory (`memory.available<100Mi`),
/// which allocatable leaves out.
const EVICTION_HARD_MEMORY: u64 = 100 * 1024 * 1024;

/// The machine's resources as the Node reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: u64,
    /// Physical memory, bytes.
    pub memory: u64,
    /// Size of the filesystem holding the kubelet's root dir, bytes.
    pub ephemeral_storage: u64,
    /// Hugepages by size name (`hugepages-2Mi`), bytes.
    pub hugepages: BTreeMap<String, u64>,
}

impl Machine {
    /// Reads the machine's resources; `root_dir` picks the filesystem measured for
    /// ephemeral storage.
    pub fn probe(root_dir: &Path) -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo_kib(&meminfo, "MemTotal").unwrap_or(0) * 1024;
        let ephemeral_storage = nix::sys::statvfs::statvfs(root_dir)
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0);
        let mut hugepages = BTreeMap::new();
        if let Some(kib) = meminfo_kib(&meminfo, "Hugepagesize") {
            let total = meminfo_kib(&meminfo, "HugePages_Total").unwrap_or(0);
            let size = Quantity::new((kib * 1024) as i64, apimachinery::Format::BinarySI);
            hugepages.insert(format!("hugepages-{size}"), total * kib * 1024);
        }
        Machine {
            cpus,
            memory,
            ephemeral_storage,
            hugepages,
        }
    }

    /// `status.capacity`.
    pub fn capacity(&self, max_pods: u32) -> BTreeMap<String, ApiQuantity> {
        let mut out = BTreeMap::new();
        out.insert("cpu".into(), ApiQuantity(self.cpus.to_string()));
        out.insert(
            "memory".into(),
            ApiQuantity(format!("{}Ki", self.memory / 1024)),
        );
        out.insert(
            "ephemeral-storage".into(),
            ApiQuantity(format!("{}Ki", self.ephemeral_storage / 1024)),
        );
        out.insert("pods".into(), ApiQuantity(max_pods.to_string()));
        for (name, bytes) in &self.hugepages {
            out.insert(name.clone(), ApiQuantity(bytes.to_string()));
        }
        out
    }

    /// `status.allocatable`: capacity minus the reservations and, for memory, the
    /// hard eviction threshold; ephemeral storage keeps 10% back (upstream's
    /// `nodefs.available<10%`).
    pub fn allocatable(
        &self,
        max_pods: u32,
        reserved: &BTreeMap<String, Quantity>,
    ) -> BTreeMap<String, ApiQuantity> {
        let minus = |name: &str, total: i128| -> i128 {
            let held = reserved.get(name).map_or(0, |q| q.value() as i128);
            (total - held).max(0)
        };
        let mut out = self.capacity(max_pods);
        let cpu_milli = (self.cpus as i128 * 1000
            - reserved.get("cpu").map_or(0, |q| q.milli_value() as i128))
        .max(0);
        out.insert(
            "cpu".into(),
            ApiQuantity(if cpu_milli % 1000 == 0 {
                (cpu_milli / 1000).to_string()
            } else {
                format!("{cpu_milli}m")
            }),
        );
        let memory = minus("memory", self.memory as i128 - EVICTION_HARD_MEMORY as i128);
        out.insert("memory".into(), ApiQuantity(format!("{}Ki", memory / 1024)));
        let storage = minus(
            "ephemeral-storage",
            self.ephemeral_storage as i128 - self.ephemeral_storage as i128 / 10,
        );
        out.insert("ephemeral-storage".into(), ApiQuantity(storage.to_string()));
        out
    }
}

/// A `/proc/meminfo` value in KiB.
fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Parses `cpu=100m,memory=100Mi` style reservations.
pub fn parse_reservations(
    items: &[String],
) -> Result<BTreeMap<String, Quantity>, crate::KubeletError> {
    let mut out: BTreeMap<String, Quantity> = BTreeMap::new();
    for item in items.iter().filter(|i| !i.is_empty()) {
        let (name, value) = item.split_once('=').ok_or_else(|| {
            crate::KubeletError::Config(format!("reservation {item:?} is not name=quantity"))
        })?;
        let q: Quantity = value
            .parse()
            .map_err(|e| crate::KubeletError::Config(format!("reservation {item:?}: {e}")))?;
        match out.get_mut(name) {
            Some(sum) => *sum += &q,
            None => {
                out.insert(name.to_string(), q);
            }
        }
    }
    Ok(out)
}

/// The machine's hostname, lowercased as the kubelet uses it for the Node name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
        .trim()
        .to_lowercase()
}

/// `status.nodeInfo`.
pub fn node_info() -> NodeSystemInfo {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let os_release = read("/etc/os-release");
    let os_image = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into());
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    NodeSystemInfo {
        machine_id: read("/etc/machine-id"),
        system_uuid: read("/sys/class/dmi/id/product_uuid"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        kernel_version: kernel,
        os_image,
        container_runtime_version: format!("ferrokube://{}", env!("CARGO_PKG_VERSION")),
        kubelet_version: KUBELET_VERSION.into(),
        kube_proxy_version: String::new(),
        operating_system: "linux".into(),
        architecture: architecture.into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_allocatable() {
        let m = Machine {
            cpus: 2,
            memory: 4 * 1024 * 1024 * 1024,
            ephemeral_storage: 100 * 1024 * 1024 * 1024,
            hugepages: BTreeMap::from([("hugepages-2Mi".to_string(), 0)]),
        };
        let cap = m.capacity(110);
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "4194304Ki");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(cap["hugepages-2Mi"].0, "0");
        let reserved = parse_reservations(&["cpu=100m".into(), "memory=100Mi".into()]).unwrap();
        let alloc = m.allocatable(110, &reserved);
        assert_eq!(alloc["cpu"].0, "1900m");
        // 4 GiB - 100 MiB eviction threshold - 100 MiB reserved.
        assert_eq!(alloc["memory"].0, format!("{}Ki", (4096 - 200) * 1024));
        assert!(parse_reservations(&["cpu".into()]).is_err());
    }

    #[test]
    fn meminfo_values() {
        let text = "MemTotal:       24608996 kB\nHugepagesize:       2048 kB\n";
        assert_eq!(meminfo_kib(text, "MemTotal"), Some(24608996));
        assert_eq!(meminfo_kib(text, "Hugepagesize"), Some(2048));
        assert_eq!(meminfo_kib(text, "Nope"), None);
    }
}
