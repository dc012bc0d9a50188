//! Host-local IPAM: pod addresses from one subnet (the node's podCIDR), each kept as a
//! file in a directory, in the layout of the CNI `host-local` plugin so that either can
//! read the other's allocations.
//!
//! - A file named after the address (`10.42.0.7`, `fd00::7`) holds the owner (the
//!   sandbox or container id), `\r\n`, and the interface name. It is created with
//!   `O_EXCL`, so an address is never handed out twice, even to another process
//!   sharing the directory, and it is synced with its directory before the address is
//!   returned, so an allocation survives a crash.
//! - `last_reserved_ip.0` holds the address handed out last. The next allocation starts
//!   after it and wraps around, so an address just released is the last to be reused.
//! - The subnet's first host address is the gateway and never handed out, nor is the
//!   network address or (IPv4) the broadcast address.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use parking_lot::Mutex;

const LAST_RESERVED: &str = "last_reserved_ip.0";

/// Why an address could not be allocated or released.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Reading or writing the allocation directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Every address of the subnet is in use.
    #[error("no IP addresses available in range set: {0}")]
    Exhausted(IpNet),
    /// The subnet has no address left once the network, gateway and broadcast
    /// addresses are set aside.
    #[error("subnet {0} is too small for pod addresses")]
    TooSmall(IpNet),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> IpamError {
    let context = context.into();
    move |source| IpamError::Io { context, source }
}

/// Addresses of one subnet, handed out to owners and kept in a directory.
pub struct HostLocal {
    dir: PathBuf,
    subnet: IpNet,
    /// Address -> owner, mirroring the directory (the files are the truth; this saves
    /// reading them at every allocation).
    state: Mutex<BTreeMap<IpAddr, String>>,
}

impl HostLocal {
    /// Opens (creating it if needed) the allocation directory `dir` for `subnet` and
    /// loads the allocations already recorded there. Files naming addresses outside
    /// the subnet are left alone and ignored.
    pub fn open(dir: &Path, subnet: IpNet) -> Result<HostLocal, IpamError> {
        let subnet = subnet.trunc();
        if host_count(subnet) < 2 {
            return Err(IpamError::TooSmall(subnet));
        }
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let mut state = BTreeMap::new();
        let entries = fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<IpAddr>().ok())
            else {
                continue;
            };
            if !subnet.contains(&ip) {
                continue;
            }
            let text = fs::read_to_string(entry.path())
                .map_err(io_err(format!("reading {}", entry.path().display())))?;
            state.insert(ip, owner_of(&text).to_string());
        }
        Ok(HostLocal {
            dir: dir.to_path_buf(),
            subnet,
            state: Mutex::new(state),
        })
    }

    /// The subnet addresses come from.
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// The gateway: the subnet's first host address (the bridge's own address).
    pub fn gateway(&self) -> IpAddr {
        gateway_of(self.subnet)
    }

    /// An address for `owner`: the one it already holds, or a new one, recorded on
    /// disk before it is returned.
    pub fn allocate(&self, owner: &str, ifname: &str) -> Result<IpAddr, IpamError> {
        let mut state = self.state.lock();
        if let Some((ip, _)) = state.iter().find(|(_, o)| o.as_str() == owner) {
            return Ok(*ip);
        }
        // Offsets of usable addresses: 2 ..= last (the gateway is 1; for IPv4 the
        // broadcast address is past `host_count`).
        let first: u128 = 2;
        let last: u128 = host_count(self.subnet);
        let span = last - first + 1;
        let start = self
            .last_reserved()
            .map(|ip| offset(self.subnet, ip))
            .filter(|o| (first..=last).contains(o))
            .map(|o| if o == last { first } else { o + 1 })
            .unwrap_or(first);
        // Every address in use is skipped at most once, so a free one is found within
        // `state.len() + 1` candidates unless other processes hold addresses too.
        let mut candidate = start;
        let mut tried: u128 = 0;
        while tried < span {
            let ip = nth(self.subnet, candidate);
            if !state.contains_key(&ip) && self.claim(ip, owner, ifname)? {
                state.insert(ip, owner.to_string());
                self.set_last_reserved(ip)?;
                return Ok(ip);
            }
            candidate = if candidate == last {
                first
            } else {
                candidate + 1
            };
            tried += 1;
        }
        Err(IpamError::Exhausted(self.subnet))
    }

    /// Releases every address `owner` holds; returns them. Releasing what is not held
    /// is not an error.
    pub fn release(&self, owner: &str) -> Result<Vec<IpAddr>, IpamError> {
        let mut state = self.state.lock();
        let held: Vec<IpAddr> = state
            .iter()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &held {
            self.remove_file(*ip)?;
            state.remove(ip);
        }
        Ok(held)
    }

    /// Releases the addresses of every owner `keep` says no to (after a restart, for
    /// sandboxes removed while nobody was watching); returns them.
    pub fn release_unless(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(IpAddr, String)>, IpamError> {
        let mut state = self.state.lock();
        let gone: Vec<(IpAddr, String)> = state
            .iter()
            .filter(|(_, o)| !keep(o))
            .map(|(ip, o)| (*ip, o.clone()))
            .collect();
        for (ip, _) in &gone {
            self.remove_file(*ip)?;
            state.remove(ip);
        }
        Ok(gone)
    }

    /// Every address handed out, with its owner.
    pub fn allocations(&self) -> Vec<(IpAddr, String)> {
        self.state
            .lock()
            .iter()
            .map(|(ip, o)| (*ip, o.clone()))
            .collect()
    }

    /// Records `ip` for `owner` unless a file for it exists; false if it does.
    fn claim(&self, ip: IpAddr, owner: &str, ifname: &str) -> Result<bool, IpamError> {
        let path = self.dir.join(ip.to_string());
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(format!("creating {}", path.display()))(e)),
        };
        let written = file
            .write_all(format!("{owner}\r\n{ifname}").as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| sync_dir(&self.dir));
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(io_err(format!("writing {}", path.display()))(e));
        }
        Ok(true)
    }

    fn remove_file(&self, ip: IpAddr) -> Result<(), IpamError> {
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir).map_err(io_err(format!("syncing {}", self.dir.display())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
        }
    }

    fn last_reserved(&self) -> Option<IpAddr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Only a hint for where the next search starts: not synced.
    fn set_last_reserved(&self, ip: IpAddr) -> Result<(), IpamError> {
        let path = self.dir.join(LAST_RESERVED);
        fs::write(&path, ip.to_string()).map_err(io_err(format!("writing {}", path.display())))
    }
}

/// The owner in an allocation file: its first line.
fn owner_of(text: &str) -> &str {
    text.split(['\r', '\n']).next().unwrap_or("").trim()
}

/// Addresses of the subnet less the network address, and for IPv4 the broadcast
/// address (so a /24 has 254, a /31 none).
fn host_count(net: IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    let size: u128 = if bits >= 128 {
        u128::MAX
    } else {
        1u128 << bits
    };
    match net {
        IpNet::V4(_) => size.saturating_sub(2),
        IpNet::V6(_) => size.saturating_sub(1),
    }
}

/// A subnet's gateway: its first host address.
pub fn gateway_of(net: IpNet) -> IpAddr {
    nth(net, 1)
}

/// The address `n` after the subnet's network address.
fn nth(net: IpNet, n: u128) -> IpAddr {
    match net {
        IpNet::V4(v4) => {
            let base = u32::from(v4.network());
            IpAddr::V4(base.wrapping_add(n as u32).into())
        }
        IpNet::V6(v6) => {
            let base = u128::from(v6.network());
            IpAddr::V6(base.wrapping_add(n).into())
        }
    }
}

/// How far `ip` is from the subnet's network address.
fn offset(net: IpNet, ip: IpAddr) -> u128 {
    match (net, ip) {
        (IpNet::V4(v4), IpAddr::V4(a)) => {
            u128::from(u32::from(a).wrapping_sub(u32::from(v4.network())))
        }
        (IpNet::V6(v6), IpAddr::V6(a)) => u128::from(a).wrapping_sub(u128::from(v6.network())),
        _ => u128::MAX,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_in_order_after_the_gateway_and_never_twice() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = HostLocal::open(dir.path(), net("10.42.3.0/24")).unwrap();
        assert_eq!(ipam.gateway(), ip("10.42.3.1"));
        assert_eq!(ipam.allocate("a", "eth0").unwrap(), ip("10.42.3.2"));
        assert_eq!(ipam.allocate("b", "eth0").unwrap(), ip("10.42.3.3"));
        // Asking again gives the owner the address it holds.
        assert_eq!(ipam.allocate("a", "eth0").unwrap(), ip("10.42.3.2"));
        let text = fs::read_to_string(dir.path().join("10.42.3.3")).unwrap();
        assert_eq!(text, "b\r\neth0");
        assert_eq!(
            fs::read_to_string(dir.path().join(LAST_RESERVED)).unwrap(),
            "10.42.3.3"
        );
    }

    #[test]
    fn released_addresses_are_reused_last_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let subnet = net("10.42.0.0/29"); // .2 to .6 usable
        let ipam = HostLocal::open(dir.path(), subnet).unwrap();
        for (i, owner) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(
                ipam.allocate(owner, "eth0").unwrap(),
                nth(subnet, 2 + i as u128)
            );
        }
        assert_eq!(ipam.release("a").unwrap(), vec![ip("10.42.0.2")]);
        assert!(!dir.path().join("10.42.0.2").exists());
        assert!(ipam.release("a").unwrap().is_empty());
        drop(ipam);

        // A new process (a restarted kubelet) sees what was recorded.
        let ipam = HostLocal::open(dir.path(), subnet).unwrap();
        assert_eq!(
            ipam.allocations(),
            vec![(ip("10.42.0.3"), "b".into()), (ip("10.42.0.4"), "c".into())]
        );
        // Round robin: .5 and .6 before the released .2.
        assert_eq!(ipam.allocate("d", "eth0").unwrap(), ip("10.42.0.5"));
        assert_eq!(ipam.allocate("e", "eth0").unwrap(), ip("10.42.0.6"));
        assert_eq!(ipam.allocate("f", "eth0").unwrap(), ip("10.42.0.2"));
        match ipam.allocate("g", "eth0") {
            Err(IpamError::Exhausted(n)) => assert_eq!(n, subnet),
            other => panic!("expected exhaustion, got {other:?}"),
        }
        assert_eq!(
            ipam.allocate("g", "eth0").unwrap_err().to_string(),
            "no IP addresses available in range set: 10.42.0.0/29"
        );
    }

    #[test]
    fn addresses_held_by_another_process_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = HostLocal::open(dir.path(), net("10.42.0.0/24")).unwrap();
        // Another user of the directory (the CNI host-local plugin) takes .2 after
        // this one loaded its state.
        fs::write(dir.path().join("10.42.0.2"), "other\r\neth0").unwrap();
        assert_eq!(ipam.allocate("a", "eth0").unwrap(), ip("10.42.0.3"));
        assert_eq!(
            fs::read_to_string(dir.path().join("10.42.0.2")).unwrap(),
            "other\r\neth0"
        );
    }

    #[test]
    fn two_users_of_one_directory_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let subnet = net("10.42.0.0/24");
        let a = std::sync::Arc::new(HostLocal::open(dir.path(), subnet).unwrap());
        let b = std::sync::Arc::new(HostLocal::open(dir.path(), subnet).unwrap());
        let threads: Vec<_> = [a.clone(), b.clone(), a, b]
            .into_iter()
            .enumerate()
            .map(|(t, ipam)| {
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| ipam.allocate(&format!("t{t}-{i}"), "eth0").unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<IpAddr> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 200);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 201);
    }

    #[test]
    fn leaked_owners_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = HostLocal::open(dir.path(), net("10.42.0.0/24")).unwrap();
        ipam.allocate("live", "eth0").unwrap();
        ipam.allocate("gone", "eth0").unwrap();
        let released = ipam.release_unless(|o| o == "live").unwrap();
        assert_eq!(released, vec![(ip("10.42.0.3"), "gone".to_string())]);
        assert_eq!(ipam.allocations(), vec![(ip("10.42.0.2"), "live".into())]);
        assert!(!dir.path().join("10.42.0.3").exists());
    }

    #[test]
    fn ipv6_and_tiny_subnets() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = HostLocal::open(dir.path(), net("fd00:42::/64")).unwrap();
        assert_eq!(ipam.gateway(), ip("fd00:42::1"));
        assert_eq!(ipam.allocate("a", "eth0").unwrap(), ip("fd00:42::2"));
        assert!(dir.path().join("fd00:42::2").exists());
        // Host bits in the subnet are ignored.
        let other = tempfile::tempdir().unwrap();
        let ipam = HostLocal::open(other.path(), net("10.42.5.77/24")).unwrap();
        assert_eq!(ipam.subnet(), net("10.42.5.0/24"));
        assert!(matches!(
            HostLocal::open(other.path(), net("10.42.0.0/31")),
            Err(IpamError::TooSmall(_))
        ));
        // A /30 has one pod address besides the gateway.
        let tiny = tempfile::tempdir().unwrap();
        let ipam = HostLocal::open(tiny.path(), net("10.42.0.0/30")).unwrap();
        assert_eq!(ipam.allocate("a", "eth0").unwrap(), ip("10.42.0.2"));
        assert!(ipam.allocate("b", "eth0").is_err());
    }

    #[test]
    fn foreign_files_outside_the_subnet_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("10.99.0.2"), "x\r\neth0").unwrap();
        fs::write(dir.path().join("lock"), "").unwrap();
        let ipam = HostLocal::open(dir.path(), net("10.42.0.0/24")).unwrap();
        assert!(ipam.allocations().is_empty());
        assert_eq!(owner_of("abc\r\neth0"), "abc");
        assert_eq!(owner_of(""), "");
    }
}
