//! Atomic file writes for every crate: content goes to a temporary sibling, is synced,
//! and is renamed over the target, so a killed process or a full disk never leaves a
//! half-written file under the real name (the old file stays until the rename).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The temporary sibling used while writing `path`: hidden, and unique per process and
/// call, so concurrent writers of the same file (threads or processes) do not interfere
/// (the last rename wins, each with complete content).
pub fn temporary_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let call = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{call}.tmp", std::process::id()))
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
/// subdirectories): hidden `.NAME.PID.N.tmp` files whose process is gone. Files of live
/// processes (another worker still writing) are kept; where liveness cannot be checked
/// (no `/proc`), nothing is removed. Returns how many files were removed.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<usize> {
    if !Path::new("/proc/self").exists() {
        return Ok(0);
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(writer_pid) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
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

/// The writer's process id in the name of a [`temporary_sibling`].
fn writer_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let (_call, pid, _target) = (parts.next()?, parts.next()?, parts.next()?);
    pid.parse().ok()
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
            writer_pid(ours.file_name().unwrap().to_str().unwrap()),
            Some(std::process::id())
        );
        // A child that has exited stands for a killed writer.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir
            .path()
            .join(format!(".weights-3.safetensors.{dead}.0.tmp"));
        let plain = dir.path().join(".hidden.tmp");
        for path in [&ours, &stale, &plain, &target] {
            std::fs::write(path, b"x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 1);
        assert!(!stale.exists());
        assert!(ours.exists() && plain.exists() && target.exists());
    }
}
