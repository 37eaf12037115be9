//! Atomic file writes for every crate: content goes to a temporary sibling, is synced,
//! and is renamed over the target, so a killed process or a full disk never leaves a
//! half-written file under the real name (the old file stays until the rename).
//!
//! A temporary's name records its writer, host and process id
//! (`.NAME.PID@HOST.N.tmp`), because run directories may sit on a filesystem that many
//! machines share (a cluster's home or scratch): a process id says whether a writer is
//! alive only on its own host. [`remove_stale_temporaries`] therefore removes a
//! temporary of this host when its process is gone, and one written on another host
//! only when nobody has modified it for [`STALE_AFTER`]: a live writer modifies its temporary as it writes and renames
//! it within minutes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How long a temporary whose writer cannot be checked (another host's, or one without
/// a host in its name) must have gone unmodified before it counts as stale.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// This machine's host name as temporaries and run markers record it: the kernel's
/// host name (else `$HOSTNAME`, else `unknown`) through [`host_label`].
pub fn this_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unknown".into());
        host_label(&raw)
    })
}

/// A host name as it goes into file names: every character other than ASCII letters,
/// digits, `-` and `_` replaced by `_` (`node1.cluster` is `node1_cluster`), at most 64
/// characters, so that it parses back out of a temporary's name.
pub fn host_label(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The temporary sibling used while writing `path`: hidden, and unique per host,
/// process and call (`.NAME.PID@HOST.N.tmp`), so concurrent writers of the same file
/// (threads, processes, or processes on other machines sharing the filesystem) do not
/// interfere (the last rename wins, each with complete content).
pub fn temporary_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let call = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(
        ".{name}.{}@{}.{call}.tmp",
        std::process::id(),
        this_host()
    ))
}

/// Writes whatever `fill` writes to a buffered temporary sibling of `path`, syncs it
/// and renames it into place; on any error the temporary file is removed.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temporary_sibling(path);
    let result = File::create(&tmp)
        .and_then(|file| {
            let mut writer = BufWriter::new(file);
            fill(&mut writer)?;
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the temporary files that writers killed mid-write left in `dir` (not its
/// subdirectories): hidden [`temporary_sibling`] names whose writer is known to be
/// gone. A temporary of this host is stale when its process no longer exists (where
/// liveness cannot be checked, no `/proc`, it is kept); one of another host, or one
/// whose name records no host, when it has not been modified for [`STALE_AFTER`] (a
/// process id means nothing on another machine). Other files are never touched.
/// Only commands that are about to write into `dir` call this; commands that only read
/// a run never delete anything. Returns how many files were removed.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<usize> {
    let proc_here = Path::new("/proc/self").exists();
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(writer) = name.to_str().and_then(writer_of) else {
            continue;
        };
        let stale = if writer.host == this_host() {
            proc_here
                && writer.pid != std::process::id()
                && !Path::new(&format!("/proc/{}", writer.pid)).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age >= STALE_AFTER)
        };
        if stale {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                // Another process cleaning the same directory got there first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Creates `dir` (and its parents) when missing and removes the stale temporaries in it
/// (see [`remove_stale_temporaries`]): for directories a process is about to write into.
pub fn create_dir_for_writes(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    remove_stale_temporaries(dir).map(drop)
}

/// Who wrote a [`temporary_sibling`], from its name.
#[derive(Debug, PartialEq)]
struct Writer<'a> {
    pid: u32,
    host: &'a str,
}

/// The writer in the name of a [`temporary_sibling`]; `None` for other names.
fn writer_of(name: &str) -> Option<Writer<'_>> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let (call, writer, _target) = (parts.next()?, parts.next()?, parts.next()?);
    call.parse::<u64>().ok()?;
    let (pid, host) = writer
        .split_once('@')
        .filter(|(_, host)| !host.is_empty())?;
    Some(Writer {
        pid: pid.parse().ok()?,
        host,
    })
}

/// Writes `bytes` to `path` atomically (see [`write_with`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_leave_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"old").unwrap();
        let err = write_with(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn temporaries_of_dead_writers_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("weights-3.safetensors");
        let ours = temporary_sibling(&target);
        assert_eq!(
            writer_of(ours.file_name().unwrap().to_str().unwrap()),
            Some(Writer {
                pid: std::process::id(),
                host: this_host()
            })
        );
        // A child that has exited stands for a killed writer.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let host = this_host();
        let stale = dir
            .path()
            .join(format!(".weights-3.safetensors.{dead}@{host}.0.tmp"));
        // The same process id on another machine of a shared filesystem: nothing says
        // whether its writer lives. A name without a host is not one of ours.
        let elsewhere = dir
            .path()
            .join(format!(".weights-3.safetensors.{dead}@{host}-other.1.tmp"));
        let hostless = dir.path().join(format!(".state.json.{dead}.0.tmp"));
        let plain = dir.path().join(".hidden.tmp");
        let dotted = dir.path().join(".a.b@.0.tmp");
        for path in [
            &ours, &stale, &elsewhere, &hostless, &plain, &dotted, &target,
        ] {
            std::fs::write(path, b"x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 1);
        assert!(!stale.exists());
        for kept in [&ours, &elsewhere, &hostless, &plain, &dotted, &target] {
            assert!(kept.exists(), "{}", kept.display());
        }
        // Unmodified for longer than STALE_AFTER, the other host's temporary is taken
        // for dead; our own live one and the names that are not ours are still kept.
        let long_ago = SystemTime::now() - STALE_AFTER - Duration::from_secs(60);
        for path in [&ours, &elsewhere, &hostless, &plain] {
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 1);
        assert!(!elsewhere.exists());
        assert!(ours.exists() && hostless.exists() && plain.exists() && target.exists());
    }

    #[test]
    fn host_names_fit_in_file_names() {
        let host = this_host();
        assert!(!host.is_empty() && host.len() <= 64, "{host}");
        assert!(
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{host}"
        );
        let name = format!(".x.y.json.42@{host}.7.tmp");
        assert_eq!(writer_of(&name), Some(Writer { pid: 42, host }));
    }
}
