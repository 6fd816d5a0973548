//! Temporary files: each process writes its temporaries (uploads being received, files being
//! rendered) in its own directory `tmp/p<pid>-<id>/` under the data dir, and touches the file
//! `alive` in it while it runs. A process that dies (killed, crashed) cannot clean up after
//! itself, so every process sweeps the directories of dead ones: at start-up and with each
//! retention sweep. A directory is dead when its `alive` file has not been touched for
//! [`STALE_AFTER`], or at once when its process id is no longer running on this host (Linux,
//! where `/proc` says so). The directory of a process that stops normally is removed when its
//! state is dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Subdirectory of the data dir that holds every process's temporaries.
pub const TMP_DIR: &str = "tmp";
/// A process that has not touched its `alive` file for this long is gone (the housekeeping
/// touches it every 30 seconds).
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);
/// Loose files directly under `tmp/` (left by versions before per-process directories) are
/// removed once they are this old.
const LOOSE_AFTER: Duration = Duration::from_secs(24 * 3600);
const ALIVE: &str = "alive";

/// This process's temporary directory, removed with everything in it when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `tmp/p<pid>-<id>/` (0700) under `data_dir`.
    pub fn create(data_dir: &Path) -> anyhow::Result<Self> {
        let root = data_dir.join(TMP_DIR);
        crate::secrets::ensure_data_dir(&root)?;
        let name = format!("p{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
        let path = root.join(name);
        crate::secrets::ensure_data_dir(&path)?;
        let dir = Self { path };
        dir.touch();
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Says that this process still runs.
    pub fn touch(&self) {
        let alive = self.path.join(ALIVE);
        let touched = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&alive)
            .and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(err) = touched {
            tracing::warn!(error = %err, path = %alive.display(), "cannot touch the temporary directory");
        }
    }

    /// How many temporary files this process has now (its `alive` file aside).
    pub fn temporaries(&self) -> usize {
        std::fs::read_dir(&self.path)
            .map(|d| d.flatten().filter(|e| e.file_name() != ALIVE).count())
            .unwrap_or(0)
    }

    /// A new temporary file in this directory, deleted when dropped unless persisted.
    pub fn file(&self, prefix: &str) -> std::io::Result<tempfile::NamedTempFile> {
        // The directory may have been removed under a running process (an operator clearing
        // `tmp/`): make it again rather than fail every upload.
        crate::secrets::ensure_data_dir(&self.path).map_err(std::io::Error::other)?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(&self.path)
    }

    /// Removes the directories of dead processes and old loose files; returns how many
    /// directories and files were removed.
    pub fn sweep(&self) -> usize {
        let Some(root) = self.path.parent() else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(root) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path == self.path {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                if is_process_dir(&name) && is_dead(&path, &name) {
                    match std::fs::remove_dir_all(&path) {
                        Ok(()) => removed += 1,
                        Err(err) => {
                            tracing::warn!(error = %err, path = %path.display(), "cannot remove a dead process's temporary directory");
                        }
                    }
                }
            } else if older_than(&meta, LOOSE_AFTER) && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed temporary files of stopped processes");
        }
        removed
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn is_process_dir(name: &str) -> bool {
    name.strip_prefix('p')
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(pid, _)| pid.parse::<u32>().is_ok())
}

fn pid_of(name: &str) -> Option<u32> {
    name.strip_prefix('p')?.split_once('-')?.0.parse().ok()
}

fn older_than(meta: &std::fs::Metadata, age: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
}

fn is_dead(dir: &Path, name: &str) -> bool {
    let stale = match std::fs::metadata(dir.join(ALIVE)) {
        Ok(meta) => older_than(&meta, STALE_AFTER),
        // No heartbeat at all: judge by the directory's own age.
        Err(_) => std::fs::metadata(dir).is_ok_and(|m| older_than(&m, STALE_AFTER)),
    };
    // Where `/proc` lists processes, a process id that is not running is dead now (a reused
    // id only keeps a dead directory until it goes stale).
    let gone = Path::new("/proc/self").exists()
        && pid_of(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
    stale || gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_made_by_create_count_as_process_dirs() {
        assert!(is_process_dir("p123-0190abcd"));
        assert!(!is_process_dir("exports"));
        assert!(!is_process_dir("p-123"));
        assert!(!is_process_dir("pabc-1"));
        assert_eq!(pid_of("p42-x"), Some(42));
    }
}
