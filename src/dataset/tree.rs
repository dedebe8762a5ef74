//! Git object ids of files on disk: the id git would give a directory's tree, so a
//! checked-out task can be checked against the tree id its commit names without asking
//! git (and without writing objects anywhere).
//!
//! The format is git's: a blob is hashed as `blob <len>\0<bytes>`, a tree as
//! `tree <len>\0` followed by `<mode> <name>\0<raw id>` entries sorted by name, where a
//! directory sorts as if its name ended in `/`. Empty directories have no place in git.

use std::path::Path;

use sha1::Digest as _;

/// Which hash the repository uses: SHA-1 (40 hex digits) or SHA-256 (64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectFormat {
    Sha1,
    Sha256,
}

impl ObjectFormat {
    /// The format an object id in hex belongs to.
    pub(crate) fn of(id: &str) -> ObjectFormat {
        if id.len() == 64 {
            ObjectFormat::Sha256
        } else {
            ObjectFormat::Sha1
        }
    }

    fn hash(self, kind: &str, content: &[u8]) -> Vec<u8> {
        let header = format!("{kind} {}\0", content.len());
        match self {
            ObjectFormat::Sha1 => {
                let mut h = sha1::Sha1::new();
                h.update(header.as_bytes());
                h.update(content);
                h.finalize().to_vec()
            }
            ObjectFormat::Sha256 => {
                let mut h = sha2::Sha256::new();
                h.update(header.as_bytes());
                h.update(content);
                h.finalize().to_vec()
            }
        }
    }
}

/// The tree id (hex) of `dir` as git would store it, or `None` for an empty directory.
pub(crate) fn tree_id(dir: &Path, format: ObjectFormat) -> std::io::Result<Option<String>> {
    Ok(tree_raw(dir, format)?.map(hex::encode))
}

/// One entry of a tree object: (sort key, mode, name, raw id).
type TreeEntry = (Vec<u8>, &'static str, Vec<u8>, Vec<u8>);

fn tree_raw(dir: &Path, format: ObjectFormat) -> std::io::Result<Option<Vec<u8>>> {
    let mut entries: Vec<TreeEntry> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().as_encoded_bytes().to_vec();
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let file_type = meta.file_type();
        let (mode, id, is_dir) = if file_type.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let id = format.hash("blob", target.as_os_str().as_encoded_bytes());
            ("120000", id, false)
        } else if file_type.is_dir() {
            match tree_raw(&path, format)? {
                Some(id) => ("40000", id, true),
                None => continue,
            }
        } else {
            let bytes = std::fs::read(&path)?;
            let mode = if is_executable(&meta) {
                "100755"
            } else {
                "100644"
            };
            (mode, format.hash("blob", &bytes), false)
        };
        let mut key = name.clone();
        if is_dir {
            key.push(b'/');
        }
        entries.push((key, mode, name, id));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut content = Vec::new();
    for (_, mode, name, id) in &entries {
        content.extend_from_slice(mode.as_bytes());
        content.push(b' ');
        content.extend_from_slice(name);
        content.push(0);
        content.extend_from_slice(id);
    }
    Ok(Some(format.hash("tree", &content)))
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn tree_ids_match_what_git_computes() {
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path();
        git(root, &["init", "-q"]);
        std::fs::create_dir_all(root.join("t/sub")).unwrap();
        std::fs::create_dir_all(root.join("t/sub.d")).unwrap();
        std::fs::write(root.join("t/a.txt"), "hello\n").unwrap();
        std::fs::write(root.join("t/sub/b"), "").unwrap();
        std::fs::write(root.join("t/sub.d/c"), "x").unwrap();
        std::fs::write(root.join("t/sub-x"), "y").unwrap();
        std::fs::write(root.join("t/run.sh"), "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                root.join("t/run.sh"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
            std::os::unix::fs::symlink("a.txt", root.join("t/link")).unwrap();
        }
        std::fs::create_dir_all(root.join("t/empty")).unwrap();
        git(root, &["add", "-A"]);
        git(root, &["commit", "-qm", "x"]);
        let expected = git(root, &["rev-parse", "HEAD:t"]);
        let ours = tree_id(&root.join("t"), ObjectFormat::Sha1).unwrap();
        assert_eq!(ours.as_deref(), Some(expected.as_str()));

        // One changed byte changes the id.
        std::fs::write(root.join("t/sub/b"), "!").unwrap();
        let changed = tree_id(&root.join("t"), ObjectFormat::Sha1).unwrap();
        assert_ne!(changed.as_deref(), Some(expected.as_str()));
    }
}
