//! Devices of a container and its cgroup limits: the device nodes made in a fresh `/dev`
//! (runc's defaults plus the spec's), the device access rules (the spec's, then the
//! defaults every container may use), written to the v1 devices controller or compiled
//! into the small eBPF program cgroup v2 asks for, and the cpu, memory and pids limits.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxResources};

use crate::cgroups::{self, CgroupVersion, PodResources};
use crate::Error;

/// A device node to make in the container's `/dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceNode {
    /// Path in the container.
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: libc::mode_t,
    pub major: u32,
    pub minor: u32,
    pub mode: libc::mode_t,
    pub uid: u32,
    pub gid: u32,
}

impl DeviceNode {
    fn char(path: &str, major: u32, minor: u32) -> DeviceNode {
        DeviceNode {
            path: PathBuf::from(path),
            kind: libc::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }
    }

    pub(crate) fn from_spec(d: &LinuxDevice) -> Result<DeviceNode, String> {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(format!("device {} has no type", d.path().display()));
            }
        };
        let path = d.path().clone();
        if !path.starts_with("/dev") || path.components().any(|c| c.as_os_str() == "..") {
            return Err(format!("device path {} is not under /dev", path.display()));
        }
        let num = |v: i64, what: &str| {
            u32::try_from(v).map_err(|_| format!("device {} has {what} {v}", path.display()))
        };
        Ok(DeviceNode {
            kind,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            path,
        })
    }
}

/// The nodes every container with its own `/dev` gets (as runc).
pub(crate) fn default_nodes() -> Vec<DeviceNode> {
    vec![
        DeviceNode::char("/dev/null", 1, 3),
        DeviceNode::char("/dev/zero", 1, 5),
        DeviceNode::char("/dev/full", 1, 7),
        DeviceNode::char("/dev/random", 1, 8),
        DeviceNode::char("/dev/urandom", 1, 9),
        DeviceNode::char("/dev/tty", 5, 0),
    ]
}

/// One device access rule; `None` numbers and type `'a'` match everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub allow: bool,
    /// `'a'`, `'c'` or `'b'`.
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Letters of `rwm`.
    pub access: String,
}

impl DeviceRule {
    fn allow_char(major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind: 'c',
            major,
            minor,
            access: access.to_string(),
        }
    }

    /// The v1 `devices.allow`/`devices.deny` line.
    fn v1_line(&self) -> String {
        if self.kind == 'a' {
            return "a".to_string();
        }
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }

    fn access_bits(&self) -> i32 {
        self.access.chars().fold(0, |m, c| match c {
            'm' => m | 1,
            'r' => m | 2,
            'w' => m | 4,
            _ => m,
        })
    }
}

/// The rules of a container: the spec's resource rules, allow rules for the spec's
/// devices, then the defaults (as runc appends them).
pub(crate) fn rules(
    res: &LinuxResources,
    devices: &[LinuxDevice],
) -> Result<Vec<DeviceRule>, String> {
    let mut out = Vec::new();
    for d in res.devices().iter().flatten() {
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::P => continue,
        };
        let num = |v: Option<i64>| match v {
            None | Some(-1) => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| format!("device rule number {v}")),
        };
        let access = d.access().clone().unwrap_or_else(|| "rwm".to_string());
        if access.chars().any(|c| !"rwm".contains(c)) {
            return Err(format!("invalid device access {access:?}"));
        }
        out.push(DeviceRule {
            allow: d.allow(),
            kind,
            major: num(d.major())?,
            minor: num(d.minor())?,
            access,
        });
    }
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            _ => continue,
        };
        out.push(DeviceRule {
            allow: true,
            kind,
            major: u32::try_from(d.major()).ok(),
            minor: u32::try_from(d.minor()).ok(),
            access: "rwm".into(),
        });
    }
    out.extend([
        DeviceRule::allow_char(None, None, "m"),
        DeviceRule {
            kind: 'b',
            ..DeviceRule::allow_char(None, None, "m")
        },
        DeviceRule::allow_char(Some(1), Some(3), "rwm"),
        DeviceRule::allow_char(Some(1), Some(8), "rwm"),
        DeviceRule::allow_char(Some(1), Some(7), "rwm"),
        DeviceRule::allow_char(Some(5), Some(0), "rwm"),
        DeviceRule::allow_char(Some(1), Some(5), "rwm"),
        DeviceRule::allow_char(Some(1), Some(9), "rwm"),
        DeviceRule::allow_char(Some(136), None, "rwm"),
        DeviceRule::allow_char(Some(5), Some(2), "rwm"),
    ]);
    Ok(out)
}

/// Writes the spec's limits and device rules into the (new) container cgroup.
pub(crate) fn apply_resources(
    cgroup: &str,
    res: &LinuxResources,
    rules: &[DeviceRule],
) -> Result<(), Error> {
    let cpu = res.cpu().as_ref();
    let memory = res.memory().as_ref();
    let limits = PodResources {
        cpu_shares: cpu.and_then(|c| c.shares()),
        cpu_quota_us: cpu.and_then(|c| c.quota()),
        cpu_period_us: cpu.and_then(|c| c.period()),
        memory_limit_bytes: memory.and_then(|m| m.limit()),
        pids_limit: res.pids().as_ref().map(|p| p.limit()),
    };
    cgroups::write_limits(cgroup, &limits)?;
    let swap = memory.and_then(|m| m.swap()).filter(|s| *s > 0);
    let cpus = cpu.and_then(|c| c.cpus().clone()).filter(|s| !s.is_empty());
    let mems = cpu.and_then(|c| c.mems().clone()).filter(|s| !s.is_empty());
    let write = |controller: &str, file: &str, value: &str, required: bool| -> Result<(), Error> {
        let Some(dir) = cgroups::controller_dir(controller, cgroup)? else {
            return Ok(());
        };
        let path = dir.join(file);
        if !required && !path.exists() {
            return Ok(());
        }
        std::fs::write(&path, value).map_err(|e| Error::Cgroup {
            path,
            message: e.to_string(),
        })
    };
    match cgroups::version() {
        CgroupVersion::V1 => {
            if let Some(swap) = swap {
                write(
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    &swap.to_string(),
                    false,
                )?;
            }
            if let Some(c) = &cpus {
                write("cpuset", "cpuset.cpus", c, true)?;
            }
            if let Some(m) = &mems {
                write("cpuset", "cpuset.mems", m, true)?;
            }
            if cgroups::controller_dir("devices", cgroup)?.is_some() {
                for r in rules {
                    let file = if r.allow {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    };
                    write("devices", file, &r.v1_line(), true)?;
                }
            }
        }
        CgroupVersion::V2 => {
            if let (Some(swap), Some(limit)) = (swap, limits.memory_limit_bytes) {
                let v = (swap - limit).max(0).to_string();
                write("memory", "memory.swap.max", &v, false)?;
            }
            if let Some(c) = &cpus {
                write("cpuset", "cpuset.cpus", c, true)?;
            }
            if let Some(m) = &mems {
                write("cpuset", "cpuset.mems", m, true)?;
            }
            if let Some(dir) = cgroups::controller_dir("", cgroup)? {
                attach_device_filter(&dir, rules).map_err(|e| Error::Cgroup {
                    path: dir.clone(),
                    message: format!("attaching the device filter: {e}"),
                })?;
            }
        }
    }
    Ok(())
}

/// One eBPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Instruction classes and operations used below.
const LDX_MEM_W: u8 = 0x61;
const MOV64_REG: u8 = 0xbf;
const MOV32_REG: u8 = 0xbc;
const MOV64_IMM: u8 = 0xb7;
const AND32_IMM: u8 = 0x54;
const RSH32_IMM: u8 = 0x74;
const JNE_IMM: u8 = 0x55;
const JEQ_IMM: u8 = 0x15;
const EXIT: u8 = 0x95;

/// The device filter as a `BPF_PROG_TYPE_CGROUP_DEVICE` program: rules are checked last
/// to first and the first that matches decides; none matching allows (as v1 inherits
/// "allow all").
fn device_program(rules: &[DeviceRule]) -> Vec<Insn> {
    // r2 = device type, r3 = access, r4 = major, r5 = minor.
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(MOV64_REG, 3, 2, 0, 0),
        insn(AND32_IMM, 2, 0, 0, 0xffff),
        insn(RSH32_IMM, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut block = Vec::new();
        let mut jumps = Vec::new();
        match r.kind {
            'c' => {
                jumps.push(block.len());
                block.push(insn(JNE_IMM, 2, 0, 0, 2));
            }
            'b' => {
                jumps.push(block.len());
                block.push(insn(JNE_IMM, 2, 0, 0, 1));
            }
            _ => {}
        }
        let bits = r.access_bits();
        if r.kind != 'a' || !r.allow {
            block.push(insn(MOV32_REG, 1, 3, 0, 0));
            if r.allow {
                block.push(insn(AND32_IMM, 1, 0, 0, !bits & 7));
                jumps.push(block.len());
                block.push(insn(JNE_IMM, 1, 0, 0, 0));
            } else {
                block.push(insn(AND32_IMM, 1, 0, 0, bits));
                jumps.push(block.len());
                block.push(insn(JEQ_IMM, 1, 0, 0, 0));
            }
        }
        if r.kind != 'a' {
            if let Some(m) = r.major {
                jumps.push(block.len());
                block.push(insn(JNE_IMM, 4, 0, 0, m as i32));
            }
            if let Some(m) = r.minor {
                jumps.push(block.len());
                block.push(insn(JNE_IMM, 5, 0, 0, m as i32));
            }
        }
        block.push(insn(MOV64_IMM, 0, 0, 0, i32::from(r.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in jumps {
            block[j].off = (len - j - 1) as i16;
        }
        p.extend(block);
    }
    p.push(insn(MOV64_IMM, 0, 0, 0, 1));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Loads the device program and attaches it to the cgroup directory `dir`; the cgroup
/// keeps it from then on.
pub(crate) fn attach_device_filter(
    dir: &std::path::Path,
    rules: &[DeviceRule],
) -> std::io::Result<()> {
    let prog = device_program(rules);
    let license = CString::new("Apache-2.0").map_err(std::io::Error::other)?;
    // bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, then fields left
    // zero (no verifier log).
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let fd = bpf(BPF_PROG_LOAD, &attr)?;
    // SAFETY: the kernel just returned this descriptor to us.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir)?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cg.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    bpf(BPF_PROG_ATTACH, &attr)?;
    Ok(())
}

/// bpf(2) with an attribute block; the pointers in it must stay valid for the call.
fn bpf(cmd: libc::c_long, attr: &[u8; 128]) -> std::io::Result<libc::c_long> {
    // SAFETY: bpf(2) reads the attribute block and the buffers it points to, which the
    // callers keep alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would, on one request.
    fn eval(prog: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [kind | (access << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                MOV64_REG => r[dst] = r[src],
                MOV32_REG => r[dst] = r[src] & 0xffff_ffff,
                MOV64_IMM => r[dst] = i.imm as u64,
                AND32_IMM => r[dst] = (r[dst] & 0xffff_ffff) & (i.imm as u32 as u64),
                RSH32_IMM => r[dst] = (r[dst] & 0xffff_ffff) >> i.imm,
                JNE_IMM => {
                    if r[dst] != i.imm as u64 {
                        pc += i.off as usize
                    }
                }
                JEQ_IMM => {
                    if r[dst] == i.imm as u64 {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn device_program_decides_like_the_v1_list() {
        let deny_all = DeviceRule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        };
        let mut list = vec![deny_all];
        list.extend(rules(&LinuxResources::default(), &[]).unwrap());
        let p = device_program(&list);
        let (c, b) = (2, 1);
        let (m, rd, w) = (1, 2, 4);
        assert_eq!(eval(&p, c, rd | w, 1, 3), 1, "/dev/null");
        assert_eq!(eval(&p, c, rd, 136, 7), 1, "a pty");
        assert_eq!(eval(&p, b, rd, 8, 0), 0, "a disk");
        assert_eq!(eval(&p, b, m, 8, 0), 1, "mknod of anything");
        assert_eq!(eval(&p, c, rd, 10, 200), 0, "tun");
        assert_eq!(eval(&p, c, rd | w, 1, 4), 0, "/dev/port");
        // Nothing denied: everything allowed; a later deny of one device wins.
        assert_eq!(eval(&device_program(&[]), b, rd, 8, 0), 1);
        let deny_null = DeviceRule {
            allow: false,
            kind: 'c',
            major: Some(1),
            minor: Some(3),
            access: "w".into(),
        };
        let mut list2 = list.clone();
        list2.push(deny_null);
        let p2 = device_program(&list2);
        assert_eq!(eval(&p2, c, w, 1, 3), 0);
        assert_eq!(eval(&p2, c, rd, 1, 3), 1);
    }

    /// The program really filters in the kernel: on this machine's hybrid setup the
    /// cgroup v2 mount (`/sys/fs/cgroup/unified`) takes device programs although it
    /// carries no controllers.
    #[test]
    fn device_filter_denies_in_the_kernel() {
        let unified = std::path::Path::new("/sys/fs/cgroup/unified");
        let v2_root = if unified.join("cgroup.procs").exists() {
            unified.to_path_buf()
        } else {
            PathBuf::from("/sys/fs/cgroup")
        };
        let dir = v2_root.join(format!("ferrokube-devtest-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let deny_all = DeviceRule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        };
        let mut list = vec![deny_all];
        list.extend(rules(&LinuxResources::default(), &[]).unwrap());
        let attached = attach_device_filter(&dir, &list);
        let run = |script: &str| {
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap()
        };
        let procs = dir.join("cgroup.procs");
        // Opening is what the filter decides on.
        let inside = |dev: &str| run(&format!("echo $$ > {} && exec 3<{dev}", procs.display()));
        let null = inside("/dev/null");
        let kmsg = inside("/dev/kmsg");
        let outside = run("exec 3</dev/kmsg");
        let _ = std::fs::remove_dir(&dir);
        attached.unwrap();
        assert!(null.status.success(), "{null:?}");
        assert!(!kmsg.status.success(), "{kmsg:?}");
        assert!(
            String::from_utf8_lossy(&kmsg.stderr).contains("not permitted"),
            "{kmsg:?}"
        );
        assert!(outside.status.success(), "{outside:?}");
    }

    #[test]
    fn v1_lines() {
        let all = rules(&LinuxResources::default(), &[]).unwrap();
        let lines: Vec<String> = all.iter().map(DeviceRule::v1_line).collect();
        assert_eq!(lines[0], "c *:* m");
        assert_eq!(lines[1], "b *:* m");
        assert!(lines.contains(&"c 136:* rwm".to_string()));
    }
}
