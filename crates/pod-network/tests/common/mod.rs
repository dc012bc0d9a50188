//! Helpers for tests on network namespaces the tests create and remove: named
//! namespaces, running code inside one, and a one-line TCP exchange.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

/// A named network namespace (`ip netns add`), removed on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let name = format!("fkpn-{}-{role}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(ok.success(), "ip netns add {name}");
        Netns { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS...` output.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a thread inside the network namespace at `ns`.
pub fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&ns).expect("open netns");
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// Runs an async block on a thread inside the namespace at `ns`.
pub fn block_in_netns<T: Send + 'static>(
    ns: &Path,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    in_netns(ns, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    })
}

/// A listener made inside `ns` (sockets stay in the namespace they were made in).
pub fn listen_in(ns: &Path, ip: IpAddr) -> TcpListener {
    in_netns(ns, move || {
        TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind")
    })
}

/// Connects from inside `ns` to `to`, sends a line and returns the reply.
pub fn talk_from(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"ping\n")?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// Answers one connection on `l` with "pong from PEER".
pub fn serve_once(l: TcpListener) -> std::thread::JoinHandle<Option<IpAddr>> {
    std::thread::spawn(move || {
        let (mut s, peer) = l.accept().ok()?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).ok()?;
        s.write_all(b"pong").ok()?;
        Some(peer.ip())
    })
}
