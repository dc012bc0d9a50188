//! The container's root filesystem, built by the child in its new mount namespace: the
//! root (a spec mount at `/`, such as the image's overlayfs, or the prepared rootfs
//! bound onto itself), the spec's mounts in order (mount points resolved inside the
//! root with `openat2`'s `RESOLVE_IN_ROOT`, so symlinks in the image cannot lead out
//! of it), the cgroup view, device nodes and `/dev` links, then `pivot_root`, sysctls,
//! masked and read-only paths.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::MsFlags;

use root_path::{open_in_root, Create};

use super::cstr;
use super::plan::{CgroupView, MountKind, MountPlan, RootPlan};

/// `/proc/self/fd/N`: how mount(2) is pointed at a descriptor's file.
fn fd_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

fn mount_raw(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: MsFlags,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: mount(2) with NUL-terminated strings (or null) alive for the call.
    let r = unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags.bits(),
            p(data).cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn ctx(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Flags a read-only bind remount must keep, from the mount's current flags.
fn kept_flags(path: &CStr) -> MsFlags {
    // SAFETY: statvfs with a NUL-terminated path and a zeroed output structure.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return MsFlags::empty();
    }
    let mut f = MsFlags::empty();
    for (st_flag, ms) in [
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            f |= ms;
        }
    }
    f
}

const REMOUNT_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

/// Builds the root filesystem at `plan.rootfs` (before `pivot_root`); returns the root's
/// descriptor.
pub(crate) fn prepare(plan: &RootPlan, cwd: &Path) -> Result<OwnedFd, String> {
    // Nothing mounted from here on reaches the host, and host changes stay out.
    mount_raw(
        None,
        c"/",
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(ctx("making / private"))?;
    let rootfs = cstr(&plan.rootfs)?;
    match &plan.mount {
        // The root's own file system, mounted only in this namespace: the host's mount
        // table does not grow with containers, and it goes away with the container.
        Some(MountPlan {
            kind: MountKind::Fs { fstype, source },
            flags,
            data,
            ..
        }) => mount_raw(Some(source), &rootfs, Some(fstype), *flags, data.as_deref())
            .map_err(ctx(format!("mounting the root {}", plan.rootfs.display())))?,
        _ => mount_raw(
            Some(&rootfs),
            &rootfs,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(ctx(format!("binding the root {}", plan.rootfs.display())))?,
    }
    // SAFETY: open(2) with a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            rootfs.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(format!(
            "opening the root {}: {}",
            plan.rootfs.display(),
            io::Error::last_os_error()
        ));
    }
    // SAFETY: a descriptor just returned by open(2).
    let root = unsafe { OwnedFd::from_raw_fd(fd) };
    let rb = || unsafe { BorrowedFd::borrow_raw(root.as_raw_fd()) };
    for m in &plan.mounts {
        mount_one(rb(), m, plan).map_err(|e| format!("mounting {}: {e}", m.dest.display()))?;
    }
    make_devices(rb(), plan)?;
    if cwd != Path::new("/") {
        open_in_root(rb(), cwd, Create::Dir).map_err(ctx(format!(
            "making the working directory {}",
            cwd.display()
        )))?;
    }
    Ok(root)
}

fn mount_one(root: BorrowedFd<'_>, m: &MountPlan, plan: &RootPlan) -> io::Result<()> {
    match &m.kind {
        MountKind::Bind {
            source,
            recursive,
            dir,
        } => {
            let create = if *dir { Create::Dir } else { Create::File };
            let target = open_in_root(root, &m.dest, create)?;
            let mut flags = MsFlags::MS_BIND;
            if *recursive {
                flags |= MsFlags::MS_REC;
            }
            mount_raw(Some(source), &fd_path(&target), None, flags, None)?;
            if !(m.flags & REMOUNT_FLAGS).is_empty() {
                let target = open_in_root(root, &m.dest, Create::Nothing)?;
                let path = fd_path(&target);
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | m.flags | kept_flags(&path);
                mount_raw(None, &path, None, flags, None)?;
            }
        }
        MountKind::Fs { fstype, source } => {
            let target = open_in_root(root, &m.dest, Create::Dir)?;
            mount_raw(
                Some(source),
                &fd_path(&target),
                Some(fstype),
                m.flags,
                m.data.as_deref(),
            )?;
        }
        MountKind::Cgroup => mount_cgroup(root, m, &plan.cgroup)?,
    }
    if !m.propagation.is_empty() {
        let target = open_in_root(root, &m.dest, Create::Nothing)?;
        for p in &m.propagation {
            mount_raw(None, &fd_path(&target), None, *p, None)?;
        }
    }
    Ok(())
}

fn mount_cgroup(root: BorrowedFd<'_>, m: &MountPlan, view: &CgroupView) -> io::Result<()> {
    let target = open_in_root(root, &m.dest, Create::Dir)?;
    let ro = m.flags.contains(MsFlags::MS_RDONLY);
    match view {
        CgroupView::V2Namespaced => mount_raw(
            Some(c"cgroup2"),
            &fd_path(&target),
            Some(c"cgroup2"),
            m.flags,
            None,
        ),
        CgroupView::V2Bind(dir) => {
            mount_raw(Some(dir), &fd_path(&target), None, MsFlags::MS_BIND, None)?;
            if ro {
                let target = open_in_root(root, &m.dest, Create::Nothing)?;
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | m.flags;
                mount_raw(None, &fd_path(&target), None, flags, None)?;
            }
            Ok(())
        }
        CgroupView::V1 { binds, links } => {
            let base = m.flags - MsFlags::MS_RDONLY;
            mount_raw(
                Some(c"tmpfs"),
                &fd_path(&target),
                Some(c"tmpfs"),
                base,
                Some(c"mode=755"),
            )?;
            let tmpfs = open_in_root(root, &m.dest, Create::Nothing)?;
            for (name, dir) in binds {
                let name_c = CString::new(name.as_bytes()).map_err(io::Error::other)?;
                // SAFETY: mkdirat on a directory descriptor with a NUL-terminated name.
                if unsafe { libc::mkdirat(tmpfs.as_raw_fd(), name_c.as_ptr(), 0o755) } != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                let sub = m.dest.join(name);
                let t = open_in_root(root, &sub, Create::Nothing)?;
                mount_raw(
                    Some(dir),
                    &fd_path(&t),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                if ro {
                    let t = open_in_root(root, &sub, Create::Nothing)?;
                    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base;
                    mount_raw(None, &fd_path(&t), None, flags, None)?;
                }
            }
            for (name, to) in links {
                let (n, t) = (
                    CString::new(name.as_bytes()).map_err(io::Error::other)?,
                    CString::new(to.as_bytes()).map_err(io::Error::other)?,
                );
                // SAFETY: symlinkat with NUL-terminated strings on a directory descriptor.
                unsafe { libc::symlinkat(t.as_ptr(), tmpfs.as_raw_fd(), n.as_ptr()) };
            }
            if ro {
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base;
                mount_raw(None, &fd_path(&tmpfs), None, flags, None)?;
            }
            Ok(())
        }
    }
}

fn make_devices(root: BorrowedFd<'_>, plan: &RootPlan) -> Result<(), String> {
    for d in &plan.devices {
        let parent = d.path.parent().unwrap_or(Path::new("/dev"));
        let dir = open_in_root(root, parent, Create::Dir)
            .map_err(ctx(format!("making {}", parent.display())))?;
        let name = d
            .path
            .file_name()
            .map(|n| CString::new(n.as_bytes()).unwrap_or_default())
            .unwrap_or_default();
        // SAFETY: mknodat/fchownat on a directory descriptor with a NUL-terminated name.
        unsafe {
            let dev = libc::makedev(d.major, d.minor);
            if libc::mknodat(dir.as_raw_fd(), name.as_ptr(), d.kind | d.mode, dev) != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(format!("making device {}: {e}", d.path.display()));
                }
            }
            if (d.uid, d.gid) != (0, 0)
                && libc::fchownat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    d.uid,
                    d.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                ) != 0
            {
                return Err(format!(
                    "chown of device {}: {}",
                    d.path.display(),
                    io::Error::last_os_error()
                ));
            }
        }
    }
    if plan.dev_links {
        let dev =
            open_in_root(root, Path::new("/dev"), Create::Dir).map_err(ctx("opening /dev"))?;
        let has_pts = plan.mounts.iter().any(|m| m.dest == Path::new("/dev/pts"));
        let mut links = vec![
            (c"fd", c"/proc/self/fd"),
            (c"stdin", c"/proc/self/fd/0"),
            (c"stdout", c"/proc/self/fd/1"),
            (c"stderr", c"/proc/self/fd/2"),
        ];
        // As runc: only where the kernel has a /proc/kcore.
        if Path::new("/proc/kcore").exists() {
            links.push((c"core", c"/proc/kcore"));
        }
        if has_pts {
            links.push((c"ptmx", c"pts/ptmx"));
        }
        for (name, target) in links {
            // SAFETY: symlinkat with NUL-terminated strings on a directory descriptor.
            unsafe { libc::symlinkat(target.as_ptr(), dev.as_raw_fd(), name.as_ptr()) };
        }
    }
    Ok(())
}

/// Makes the prepared root the process's root and drops the old one.
pub(crate) fn pivot(root: OwnedFd) -> Result<(), String> {
    // SAFETY: fchdir/pivot_root/umount2/chdir with a valid descriptor and literals.
    unsafe {
        if libc::fchdir(root.as_raw_fd()) != 0 {
            return Err(format!("entering the root: {}", io::Error::last_os_error()));
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            return Err(format!("pivot_root: {}", io::Error::last_os_error()));
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(format!(
                "unmounting the old root: {}",
                io::Error::last_os_error()
            ));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(format!("chdir /: {}", io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// After `pivot_root`: sysctls, then masked and read-only paths and the read-only root.
pub(crate) fn finish(plan: &RootPlan) -> Result<(), String> {
    if let Some(p) = plan.propagation {
        mount_raw(None, c"/", None, p, None).map_err(ctx("setting the root's propagation"))?;
    }
    for (path, value) in &plan.sysctl {
        std::fs::write(path, value)
            .map_err(|e| format!("writing sysctl {}: {e}", path.display()))?;
    }
    for p in &plan.masked {
        let c = cstr(p)?;
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("masking {}: {e}", p.display())),
        };
        let r = if meta.is_dir() {
            mount_raw(Some(c"tmpfs"), &c, Some(c"tmpfs"), MsFlags::MS_RDONLY, None)
        } else {
            mount_raw(Some(c"/dev/null"), &c, None, MsFlags::MS_BIND, None)
        };
        r.map_err(ctx(format!("masking {}", p.display())))?;
    }
    for p in &plan.readonly_paths {
        let c = cstr(p)?;
        match mount_raw(Some(&c), &c, None, MsFlags::MS_BIND | MsFlags::MS_REC, None) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(format!("making {} read-only: {e}", p.display())),
        }
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_REC
            | kept_flags(&c);
        mount_raw(None, &c, None, flags, None)
            .map_err(ctx(format!("making {} read-only", p.display())))?;
    }
    if plan.readonly {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept_flags(c"/");
        mount_raw(None, c"/", None, flags, None).map_err(ctx("making the root read-only"))?;
    }
    Ok(())
}
