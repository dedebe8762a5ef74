//! The dataset cache: bare mirrors of git repositories, task directories checked out of
//! them and keyed by their git tree id, and the last copy of each registry.
//!
//! ```text
//! $HELIOS_CACHE/                     (default: the platform's user cache dir + /helios)
//!   git/<sha256(url)16>-<name>.git/  a bare mirror; `helios-url` names its remote
//!   tasks/<tree id>/<task name>/     one task's files, exactly the tree `<tree id>`
//!   registries/<sha256(url)16>.json  the registry as last downloaded
//!   tmp/                             staging, renamed into place when complete
//! ```
//!
//! A checkout is content-keyed: its directory is named by the tree id it must hash to,
//! and it is hashed again on every use, so a changed or damaged entry is noticed, removed
//! and checked out again.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::tree::{ObjectFormat, tree_id};
use super::{DatasetError, Event, Progress, git};

/// The cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

/// What `helios datasets verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Task checkouts whose files hash to their tree id.
    pub tasks_ok: usize,
    /// Mirrors git found sound.
    pub mirrors_ok: usize,
    /// Entries that failed and were removed (they are fetched again when next used).
    pub removed: Vec<PathBuf>,
}

impl Cache {
    /// `$HELIOS_CACHE`, else `<user cache dir>/helios`, else `.helios-cache`.
    pub fn from_env() -> Cache {
        let root = match std::env::var_os("HELIOS_CACHE") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => dirs::cache_dir()
                .map(|d| d.join("helios"))
                .unwrap_or_else(|| PathBuf::from(".helios-cache")),
        };
        Cache::at(root)
    }

    pub fn at(root: impl Into<PathBuf>) -> Cache {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Cache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> DatasetError + '_ {
        let path = path.to_path_buf();
        move |source| DatasetError::Cache {
            path: path.clone(),
            source,
        }
    }

    fn key(text: &str) -> String {
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
    }

    fn staging(&self) -> Result<tempfile::TempDir, DatasetError> {
        let tmp = self.root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(self.io(&tmp))?;
        tempfile::tempdir_in(&tmp).map_err(self.io(&tmp))
    }

    /// The bare mirror of `url`, created empty if there is none yet.
    pub(crate) fn mirror(&self, url: &str) -> Result<PathBuf, DatasetError> {
        let tail: String = url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':', '\\'])
            .next()
            .unwrap_or("repo")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let dir = self
            .root
            .join("git")
            .join(format!("{}-{tail}.git", Cache::key(url)));
        if dir.join("HEAD").is_file() {
            return Ok(dir);
        }
        let staging = self.staging()?;
        let fresh = staging.path().join("m.git");
        git::init_bare(&fresh).map_err(DatasetError::git)?;
        std::fs::write(fresh.join("helios-url"), url).map_err(self.io(&fresh))?;
        let parent = self.root.join("git");
        std::fs::create_dir_all(&parent).map_err(self.io(&parent))?;
        // Another process may have made it meanwhile; theirs is as good as ours.
        if std::fs::rename(&fresh, &dir).is_err() && !dir.join("HEAD").is_file() {
            return Err(DatasetError::Cache {
                path: dir,
                source: std::io::Error::other("cannot move the new mirror into place"),
            });
        }
        Ok(dir)
    }

    /// Removes a mirror that git could not read, so the next use fetches it again.
    pub(crate) fn drop_mirror(&self, mirror: &Path) {
        let _ = std::fs::remove_dir_all(mirror);
    }

    pub(crate) fn registry_copy(&self, url: &str) -> PathBuf {
        self.root
            .join("registries")
            .join(format!("{}.json", Cache::key(url)))
    }

    pub(crate) fn store_registry_copy(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<(), DatasetError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(self.io(parent))?;
        }
        crate::atomic::write_atomic(path, bytes).map_err(self.io(path))
    }

    /// The checkout of tree `tree` of the mirror as a task named `name`: reused when its
    /// files still hash to `tree`, else (re)written from the mirror's objects. Returns the
    /// directory and whether it had to be written.
    pub(crate) fn checkout(
        &self,
        mirror: &Path,
        entries: &[git::Entry],
        path: &str,
        tree: &str,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, bool), DatasetError> {
        let target = self.root.join("tasks").join(tree).join(name);
        if target.is_dir() {
            if Cache::holds(&target, tree) {
                return Ok((target, false));
            }
            progress.event(Event::Repairing {
                what: target.display().to_string(),
            });
            std::fs::remove_dir_all(&target).map_err(self.io(&target))?;
        }
        let staging = self.staging()?;
        let fresh = staging.path().join(name);
        write_tree(mirror, entries, path, &fresh).map_err(|e| match e {
            WriteError::Git(failure) => DatasetError::git(failure),
            WriteError::Submodule(at) => DatasetError::Unsupported {
                detail: format!(
                    "`{at}` is a git submodule; task directories cannot hold submodules"
                ),
            },
            WriteError::Io(source) => DatasetError::Cache {
                path: fresh.clone(),
                source,
            },
        })?;
        if !Cache::holds(&fresh, tree) {
            return Err(DatasetError::Unsupported {
                detail: format!(
                    "the files checked out of `{path}` do not hash to its tree `{tree}`"
                ),
            });
        }
        let parent = target.parent().expect("a task directory has a parent");
        std::fs::create_dir_all(parent).map_err(self.io(parent))?;
        if std::fs::rename(&fresh, &target).is_err() && !Cache::holds(&target, tree) {
            return Err(DatasetError::Cache {
                path: target,
                source: std::io::Error::other("cannot move the checkout into place"),
            });
        }
        Ok((target, true))
    }

    /// Whether `dir`'s files hash to `tree`.
    fn holds(dir: &Path, tree: &str) -> bool {
        matches!(tree_id(dir, ObjectFormat::of(tree)), Ok(Some(id)) if id == tree)
    }

    /// Checks every entry: each checkout against its tree id, each mirror with
    /// `git fsck`; removes what fails.
    pub fn verify(&self, progress: &dyn Progress) -> Result<VerifyReport, DatasetError> {
        let mut report = VerifyReport::default();
        let tasks = self.root.join("tasks");
        let mut checkouts = Vec::new();
        for tree in read_dir(&tasks)? {
            for task in read_dir(&tree)? {
                checkouts.push(task);
            }
        }
        let mirrors = read_dir(&self.root.join("git"))?;
        progress.event(Event::Checking {
            total: checkouts.len() + mirrors.len(),
        });
        for checkout in checkouts {
            let tree = checkout
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if Cache::holds(&checkout, &tree) {
                report.tasks_ok += 1;
            } else {
                std::fs::remove_dir_all(&checkout).map_err(self.io(&checkout))?;
                report.removed.push(checkout);
            }
            progress.event(Event::Checked);
        }
        for mirror in mirrors {
            if git::fsck(&mirror).is_ok() {
                report.mirrors_ok += 1;
            } else {
                self.drop_mirror(&mirror);
                report.removed.push(mirror);
            }
            progress.event(Event::Checked);
        }
        Ok(report)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut out: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            out.sort();
            Ok(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(DatasetError::Cache {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

enum WriteError {
    Git(git::GitFailure),
    Submodule(String),
    Io(std::io::Error),
}

/// Writes the files under `path` of a commit's listing into `dest`, from the mirror's raw
/// blobs (no filters, no end-of-line conversion: exactly the bytes the tree id covers).
fn write_tree(
    mirror: &Path,
    entries: &[git::Entry],
    path: &str,
    dest: &Path,
) -> Result<(), WriteError> {
    let prefix = format!("{path}/");
    let mut blobs = Vec::new();
    for entry in entries.iter().filter(|e| e.path.starts_with(&prefix)) {
        let relative = &entry.path[prefix.len()..];
        match entry.kind.as_str() {
            "blob" => blobs.push((entry, relative)),
            "commit" => return Err(WriteError::Submodule(entry.path.clone())),
            _ => {}
        }
    }
    std::fs::create_dir_all(dest).map_err(WriteError::Io)?;
    let ids: Vec<&str> = blobs.iter().map(|(e, _)| e.id.as_str()).collect();
    git::read_blobs(mirror, &ids, |index, bytes| {
        let (entry, relative) = blobs[index];
        let file = dest.join(relative);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_entry(&file, &entry.mode, bytes)
    })
    .map_err(WriteError::Git)
}

#[cfg(unix)]
fn write_entry(file: &Path, mode: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    match mode {
        "120000" => std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(bytes), file),
        "100755" => {
            std::fs::write(file, bytes)?;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755))
        }
        _ => {
            std::fs::write(file, bytes)?;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644))
        }
    }
}

#[cfg(not(unix))]
fn write_entry(file: &Path, _mode: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(file, bytes)
}
