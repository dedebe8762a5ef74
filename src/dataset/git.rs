//! The `git` command line: the one way helios reads repositories (ls-remote, fetch into a
//! bare mirror, ls-tree, cat-file).
//!
//! The `git` CLI rather than a library: it is on every machine that uses git, and it
//! brings the user's transports, credential helpers, proxies and `insteadOf` rules with
//! it, which is what makes `git = "URL"` behave as `git clone URL` does.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// A git command that failed, with what it said.
#[derive(Debug, Clone)]
pub(crate) struct GitFailure {
    /// The command, for messages (`git fetch …`).
    pub command: String,
    /// The last meaningful line git wrote to stderr, or how it could not be started.
    pub detail: String,
}

/// One entry of `git ls-tree -r -t`: a blob, a tree or a gitlink, at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub mode: String,
    pub kind: String,
    pub id: String,
    pub path: String,
}

fn git(dir: Option<&Path>) -> Command {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("--git-dir").arg(dir);
    }
    // Never wait for a password on a terminal nobody watches, and read git's own words.
    command
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    command
}

fn describe(command: &Command) -> String {
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("git {}", args.join(" "))
}

fn run(mut command: Command) -> Result<Vec<u8>, GitFailure> {
    let described = describe(&command);
    let output = command.output().map_err(|e| GitFailure {
        command: described.clone(),
        detail: if e.kind() == std::io::ErrorKind::NotFound {
            "`git` is not installed (helios runs the `git` command line for git sources)"
                .to_string()
        } else {
            format!("cannot run git: {e}")
        },
    })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let detail = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("git failed without a message")
        .trim_start_matches("fatal: ")
        .to_string();
    Err(GitFailure {
        command: described,
        detail,
    })
}

/// Creates an empty bare repository at `dir`.
pub(crate) fn init_bare(dir: &Path) -> Result<(), GitFailure> {
    let mut command = git(None);
    command.args(["init", "--quiet", "--bare"]).arg(dir);
    run(command).map(drop)
}

/// Every ref of the remote with its object id; tags also with their peeled commit
/// (`refs/tags/v1^{}`).
pub(crate) fn ls_remote(url: &str) -> Result<Vec<(String, String)>, GitFailure> {
    let mut command = git(None);
    command.args(["ls-remote", "--", url]);
    let out = run(command)?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| {
            let (id, name) = line.split_once('\t')?;
            Some((name.to_string(), id.to_string()))
        })
        .collect())
}

/// Fetches `refspecs` from `url` into the mirror (no tags beyond what the refspecs name).
pub(crate) fn fetch(mirror: &Path, url: &str, refspecs: &[&str]) -> Result<(), GitFailure> {
    let mut command = git(Some(mirror));
    command.args([
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--",
        url,
    ]);
    command.args(refspecs);
    run(command).map(drop)
}

/// The commit `rev` names in the mirror, if it names one.
pub(crate) fn commit_of(mirror: &Path, rev: &str) -> Option<String> {
    let mut command = git(Some(mirror));
    command.args(["rev-parse", "--verify", "--quiet", "--end-of-options"]);
    command.arg(format!("{rev}^{{commit}}"));
    run(command)
        .ok()
        .map(|out| String::from_utf8_lossy(&out).trim().to_string())
        .filter(|id| !id.is_empty())
}

/// The refs the mirror holds, by full name.
pub(crate) fn local_refs(mirror: &Path) -> Vec<(String, String)> {
    let mut command = git(Some(mirror));
    command.args([
        "for-each-ref",
        "--format=%(refname)%09%(objectname)%09%(*objectname)",
    ]);
    let Ok(out) = run(command) else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let mut parts = line.split('\t');
        let (Some(name), Some(id)) = (parts.next(), parts.next()) else {
            continue;
        };
        refs.push((name.to_string(), id.to_string()));
        if let Some(peeled) = parts.next().filter(|p| !p.is_empty()) {
            refs.push((format!("{name}^{{}}"), peeled.to_string()));
        }
    }
    refs
}

/// Every blob, tree and gitlink of `commit`, recursively.
pub(crate) fn ls_tree(mirror: &Path, commit: &str) -> Result<Vec<Entry>, GitFailure> {
    let mut command = git(Some(mirror));
    command.args(["ls-tree", "-r", "-t", "-z", "--full-tree", commit]);
    let out = run(command)?;
    Ok(out
        .split(|&b| b == 0)
        .filter_map(|record| {
            let record = std::str::from_utf8(record).ok()?;
            let (meta, path) = record.split_once('\t')?;
            let mut meta = meta.split(' ');
            Some(Entry {
                mode: meta.next()?.to_string(),
                kind: meta.next()?.to_string(),
                id: meta.next()?.to_string(),
                path: path.to_string(),
            })
        })
        .collect())
}

/// The raw contents of `blobs` (no filters, no end-of-line conversion), in order, through
/// one `git cat-file --batch`; `each` gets every blob's index and bytes.
pub(crate) fn read_blobs(
    mirror: &Path,
    blobs: &[&str],
    mut each: impl FnMut(usize, &[u8]) -> std::io::Result<()>,
) -> Result<(), GitFailure> {
    let mut command = git(Some(mirror));
    command
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let described = describe(&command);
    let failure = |detail: String| GitFailure {
        command: described.clone(),
        detail,
    };
    let mut child = command
        .spawn()
        .map_err(|e| failure(format!("cannot run git: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let request: String = blobs.iter().map(|id| format!("{id}\n")).collect();
    // Write from a thread so a large answer cannot block git while we are still asking.
    let writer = std::thread::spawn(move || stdin.write_all(request.as_bytes()));
    let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut outcome = Ok(());
    let mut header = String::new();
    let mut content = Vec::new();
    for (index, id) in blobs.iter().enumerate() {
        header.clear();
        if let Err(e) = reader.read_line(&mut header) {
            outcome = Err(failure(format!("reading blob {id}: {e}")));
            break;
        }
        let mut fields = header.split_whitespace();
        let size = match (fields.next(), fields.next(), fields.next()) {
            (Some(_), Some("blob"), Some(size)) => size.parse::<usize>().unwrap_or(0),
            _ => {
                outcome = Err(failure(format!("object {id} is missing from the mirror")));
                break;
            }
        };
        content.resize(size + 1, 0);
        if let Err(e) = reader.read_exact(&mut content) {
            outcome = Err(failure(format!("reading blob {id}: {e}")));
            break;
        }
        if let Err(e) = each(index, &content[..size]) {
            outcome = Err(failure(format!("writing blob {id}: {e}")));
            break;
        }
    }
    if outcome.is_err() {
        let _ = child.kill();
    }
    drop(reader);
    let _ = writer.join();
    let _ = child.wait();
    outcome
}

/// Whether `rev` looks like a commit id, full or abbreviated (and could be nothing else).
pub(crate) fn is_hex_id(rev: &str) -> bool {
    (7..=64).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `rev` is a whole object id (SHA-1 or SHA-256).
pub(crate) fn is_full_id(rev: &str) -> bool {
    (rev.len() == 40 || rev.len() == 64) && is_hex_id(rev)
}

/// `git fsck` of a mirror: every object present and sound.
pub(crate) fn fsck(mirror: &Path) -> Result<(), GitFailure> {
    let mut command = git(Some(mirror));
    command.args(["fsck", "--no-progress", "--no-dangling"]);
    run(command).map(drop)
}

/// Points `name` at `commit` in the mirror.
pub(crate) fn update_ref(mirror: &Path, name: &str, commit: &str) -> Result<(), GitFailure> {
    let mut command = git(Some(mirror));
    command.args(["update-ref", name, commit]);
    run(command).map(drop)
}
