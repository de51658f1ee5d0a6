//! One run per reports directory: the run holds an exclusive `flock` on `<reports>/.lock`,
//! which names its pid. A second run into the same directory is refused with the holder's pid
//! instead of overwriting its reports; the kernel releases the lock when the holder exits,
//! however it exits (SIGKILL included), so a stale lock never blocks a later run.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

use anyhow::{Context, bail};

/// Name of the lock file in the reports directory.
pub const LOCK_FILE: &str = ".lock";

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct ReportsLock {
    _file: File,
}

/// Locks `dir` (created if missing) for this run, or says which process holds it.
pub fn lock(dir: &Path) -> anyhow::Result<ReportsLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() { "an unknown pid".to_string() } else { format!("pid {holder}") };
            bail!(
                "the reports directory {} is in use by another hadrill run ({holder}, holding {}); \
                 wait for it or give this run another directory with HADRILL_REPORTS",
                dir.display(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("writing the pid into {}", path.display()))?;
    Ok(ReportsLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_into_a_locked_directory_is_refused_with_the_holders_pid() {
        let dir = std::env::temp_dir().join(format!("hadrill-lock-{}", uuid::Uuid::new_v4().simple()));
        let held = lock(&dir).unwrap();
        // Another open file description conflicts as another process's would.
        let err = lock(&dir).unwrap_err().to_string();
        assert!(err.contains(&format!("in use by another hadrill run (pid {}", std::process::id())), "{err}");
        assert!(err.contains("HADRILL_REPORTS"), "{err}");
        drop(held);
        let again = lock(&dir).expect("released with its holder");
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
