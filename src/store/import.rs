//! Copying finished trials from one run into another (`helios merge`): each trial's
//! directory is made beside its place and renamed into it, so a reader sees the whole old
//! directory or the whole new one; files are hard-linked where the filesystem allows.

use std::path::{Path, PathBuf};

use super::{BUILDS_DIR, RunStore};

impl RunStore {
    /// Puts a copy of `from` (a trial directory of another run) at `relative` in this run,
    /// replacing what was there.
    pub fn import_trial(&self, relative: &Path, from: &Path) -> std::io::Result<()> {
        let target = self.dir.join(relative);
        let parent = target
            .parent()
            .ok_or_else(|| std::io::Error::other("a trial directory has a parent"))?;
        std::fs::create_dir_all(parent)?;
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        // A name that is no trial's (trial names never start with a dot), unique per process.
        let staging = parent.join(format!(".importing-{}-{name}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        copy_tree(from, &staging)?;
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&staging, &target)
    }

    /// Copies the build and install logs of `from` into this run (a log of the same image
    /// is the same build's: the later copy wins).
    pub fn import_builds(&self, from: &RunStore) -> std::io::Result<()> {
        let source = from.dir.join(BUILDS_DIR);
        if !source.is_dir() {
            return Ok(());
        }
        let target = self.dir.join(BUILDS_DIR);
        std::fs::create_dir_all(&target)?;
        for entry in std::fs::read_dir(&source)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let to = target.join(entry.file_name());
                let _ = std::fs::remove_file(&to);
                link_or_copy(&entry.path(), &to)?;
            }
        }
        Ok(())
    }
}

/// `cp -r from to` (`to` must not exist), hard-linking files when it can: helios never
/// writes into a finished trial's files (a rerun empties the directory first, and writes
/// are renames), so a link cannot change under the other run.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(from).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        let relative = entry
            .path()
            .strip_prefix(from)
            .map_err(std::io::Error::other)?;
        let target: PathBuf = to.join(relative);
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if kind.is_symlink() {
            copy_link(entry.path(), &target)?;
        } else {
            link_or_copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

#[cfg(unix)]
fn copy_link(from: &Path, to: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
}

#[cfg(not(unix))]
fn copy_link(_from: &Path, _to: &Path) -> std::io::Result<()> {
    // Trial directories hold no links on systems without them.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_imported_trial_replaces_the_old_directory_whole() {
        let root = tempfile::tempdir().unwrap();
        let from = root.path().join("a/s/t__x");
        std::fs::create_dir_all(from.join("agent")).unwrap();
        std::fs::write(from.join("result.json"), "new").unwrap();
        std::fs::write(from.join("agent/log.txt"), "log").unwrap();
        let store = RunStore::new(root.path().join("merged"));
        let stale = store.dir().join("s/t__x");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("stale.txt"), "old").unwrap();

        store.import_trial(Path::new("s/t__x"), &from).unwrap();

        assert_eq!(
            std::fs::read_to_string(stale.join("result.json")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(stale.join("agent/log.txt")).unwrap(),
            "log"
        );
        assert!(!stale.join("stale.txt").exists());
        let names: Vec<String> = std::fs::read_dir(store.dir().join("s"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["t__x"], "no staging directory is left");
    }
}
