//! Commands and files in a sandbox, through its toolbox: `POST /process/execute`,
//! `POST /files/upload` (multipart) and `GET /files/download`. The toolbox's base URL is
//! asked of the API (`GET /sandbox/{id}/toolbox-proxy-url`, then `<url>/<id>`) unless the
//! pipeline gives one. Directories travel as tar archives unpacked with the sandbox's
//! `tar`; commands are sent base64-encoded, as Daytona's SDKs do, so that no quoting of the
//! toolbox's own command parser can change them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use reqwest::multipart::{Form, Part};

use super::api::{ExecuteRequest, ExecuteResponse, Replay, ToolboxProxyUrl, to_env};
use super::engine::{DaytonaEngine, RemoteSandbox};
use crate::env::{EnvError, ExecOutput, ExecSpec, OUTPUT_CAP, Provider, shell_quote, tarball};

/// The toolbox's timeout for a command without a deadline: a day.
const NO_DEADLINE_SECS: u32 = 24 * 3600;

/// How much longer than its deadline a command's answer may take to come.
const ANSWER_GRACE: Duration = Duration::from_secs(30);

/// How long moving a file may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// Kills the process whose pid is in the file `$1` and its descendants (as the Docker
/// provider does), for toolboxes that kill only the command itself at its timeout.
const KILL_TREE: &str = r#"p=$(cat "$1" 2>/dev/null) || exit 0
k() { kill -STOP "$1" 2>/dev/null; for s in /proc/[0-9]*/stat; do read -r c _ _ pp _ < "$s" 2>/dev/null || continue; [ "$pp" = "$1" ] && k "$c"; done; kill -KILL "$1" 2>/dev/null; }
k "$p""#;

impl DaytonaEngine {
    /// The sandbox's toolbox base URL.
    async fn toolbox(&self, sandbox: &RemoteSandbox) -> Result<String, EnvError> {
        sandbox
            .toolbox
            .get_or_try_init(|| async {
                if let Some(template) = &self.config.toolbox_url {
                    return Ok(template
                        .replace("{id}", &sandbox.id)
                        .trim_end_matches('/')
                        .to_string());
                }
                let path = format!("sandbox/{}/toolbox-proxy-url", sandbox.id);
                let url = self.api.url(&path, &[])?;
                let proxy: ToolboxProxyUrl = self
                    .api
                    .json(
                        &format!("GET /{path}"),
                        || self.api.request(Method::GET, url.clone()),
                        Replay::Safe,
                        None,
                    )
                    .await?;
                Ok(format!(
                    "{}/{}",
                    proxy.url.trim_end_matches('/'),
                    sandbox.id
                ))
            })
            .await
            .cloned()
    }

    /// Runs `bash -c COMMAND` with the spec's directory and environment. Standard output
    /// and standard error come back together, in `stdout`. Past the deadline the toolbox
    /// kills the command; helios then kills what is left of its process tree.
    pub(crate) async fn exec_in(
        &self,
        sandbox: &RemoteSandbox,
        spec: &ExecSpec,
    ) -> Result<ExecOutput, EnvError> {
        let pid_file = format!("/tmp/.helios-exec-{}", self.next());
        match self.execute(sandbox, spec, &pid_file).await? {
            Some(output) => Ok(output),
            None => {
                self.kill_tree(sandbox, &pid_file).await?;
                Ok(ExecOutput {
                    exit_code: None,
                    timed_out: true,
                    ..ExecOutput::default()
                })
            }
        }
    }

    /// One command through the toolbox; `None` when its time ran out.
    async fn execute(
        &self,
        sandbox: &RemoteSandbox,
        spec: &ExecSpec,
        pid_file: &str,
    ) -> Result<Option<ExecOutput>, EnvError> {
        let script = wrapper(&spec.command, &spec.env, pid_file)?;
        let seconds = spec.deadline.map_or(NO_DEADLINE_SECS, |d| {
            d.as_secs_f64().ceil().clamp(1.0, f64::from(u32::MAX)) as u32
        });
        let request = ExecuteRequest {
            command: encoded(&script),
            cwd: spec.workdir.clone(),
            timeout: seconds,
        };
        let base = self.toolbox(sandbox).await?;
        let url = super::api::absolute(&format!("{base}/process/execute"), &[])?;
        let answer = self
            .api
            .call(
                || self.api.request(Method::POST, url.clone()).json(&request),
                Replay::OnlyIfRateLimited,
                Some(Duration::from_secs(u64::from(seconds)) + ANSWER_GRACE),
                None,
            )
            .await;
        let body = match answer {
            Ok(body) => body,
            Err(error) if error.status() == Some(408) || is_late(&error) => return Ok(None),
            Err(error) => {
                return Err(to_env(
                    &format!("running a command in sandbox `{}`", sandbox.id),
                    &error,
                ));
            }
        };
        let response: ExecuteResponse = serde_json::from_slice(&body).map_err(|e| {
            EnvError::engine(
                Provider::Daytona,
                format!(
                    "the toolbox of sandbox `{}` answered a command with something else than \
                 `{{exitCode, result}}`: {e}",
                    sandbox.id
                ),
            )
        })?;
        let mut stdout = response.result;
        let whole = stdout.len();
        if whole > OUTPUT_CAP {
            let cut = (0..=OUTPUT_CAP)
                .rev()
                .find(|&i| stdout.is_char_boundary(i))
                .unwrap_or(0);
            stdout.truncate(cut);
        }
        Ok(Some(ExecOutput {
            exit_code: Some(response.exit_code),
            cut: (whole - stdout.len()) as u64,
            stdout,
            stderr: String::new(),
            timed_out: false,
        }))
    }

    async fn kill_tree(&self, sandbox: &RemoteSandbox, pid_file: &str) -> Result<(), EnvError> {
        let spec = ExecSpec {
            command: format!(
                "sh -c {} helios-kill {}",
                shell_quote(KILL_TREE),
                shell_quote(pid_file)
            ),
            deadline: Some(Duration::from_secs(60)),
            ..ExecSpec::default()
        };
        let own_pid_file = format!("/tmp/.helios-exec-{}", self.next());
        self.execute(sandbox, &spec, &own_pid_file)
            .await
            .map(|_| ())
    }

    /// Unpacks a tar archive at `/`: uploaded as a file, then `tar -xf` in the sandbox.
    pub(crate) async fn upload_to(
        &self,
        sandbox: &RemoteSandbox,
        archive: Vec<u8>,
    ) -> Result<(), EnvError> {
        let path = format!("/tmp/.helios-upload-{}.tar", self.next());
        let base = self.toolbox(sandbox).await?;
        let url = super::api::absolute(&format!("{base}/files/upload"), &[("path", &path)])?;
        let bytes = bytes::Bytes::from(archive);
        self.api
            .call(
                || {
                    let part = Part::stream(reqwest::Body::from(bytes.clone()))
                        .file_name("upload.tar")
                        .mime_str("application/x-tar")
                        .expect("a valid MIME type");
                    self.api
                        .request(Method::POST, url.clone())
                        .multipart(Form::new().part("file", part))
                },
                Replay::Safe,
                Some(TRANSFER_TIMEOUT),
                None,
            )
            .await
            .map_err(|e| to_env(&format!("uploading to sandbox `{}`", sandbox.id), &e))?;
        let p = shell_quote(&path);
        self.must_run(
            sandbox,
            format!("tar -xf {p} -C / && rm -f {p}"),
            "unpacking an upload",
        )
        .await
    }

    /// Copies the sandbox's directory `path` into the host directory `dest`: packed with
    /// `tar -cf` in the sandbox, downloaded and unpacked here as it arrives (never held
    /// whole in memory), at most `cap` bytes of files written.
    pub(crate) async fn download_from(
        &self,
        sandbox: &RemoteSandbox,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError> {
        let trimmed = path.trim_end_matches('/');
        let (parent, name) = match trimmed.rsplit_once('/') {
            Some(("", name)) => ("/", name),
            Some((parent, name)) => (parent, name),
            None => (".", trimmed),
        };
        let archive = format!("/tmp/.helios-download-{}.tar", self.next());
        self.must_run(
            sandbox,
            format!(
                "tar -cf {} -C {} {}",
                shell_quote(&archive),
                shell_quote(parent),
                shell_quote(name)
            ),
            &format!("packing `{path}`"),
        )
        .await?;
        let base = self.toolbox(sandbox).await?;
        let url = super::api::absolute(&format!("{base}/files/download"), &[("path", &archive)])?;
        let what = format!("downloading `{path}` from sandbox `{}`", sandbox.id);
        let response = self
            .api
            .open(
                || self.api.request(Method::GET, url.clone()),
                TRANSFER_TIMEOUT,
            )
            .await
            .map_err(|e| to_env(&what, &e))?;
        let chunks = futures_util::stream::unfold(response, |mut response| async move {
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), response)),
                Ok(None) => None,
                Err(e) => Some((Err(e.without_url().to_string()), response)),
            }
        });
        let unpacked =
            tokio::time::timeout(TRANSFER_TIMEOUT, tarball::unpack_stream(chunks, dest, cap)).await;
        let _ = self
            .must_run(
                sandbox,
                format!("rm -f {}", shell_quote(&archive)),
                "cleaning up",
            )
            .await;
        match unpacked {
            Ok(Ok(stats)) => Ok(stats),
            Ok(Err(tarball::StreamError::Source(message))) => Err(to_env(
                &what,
                &super::api::ApiError::Transport {
                    message,
                    retryable: true,
                },
            )),
            Ok(Err(tarball::StreamError::Unpack(e))) => {
                Err(EnvError::io(format!("unpacking `{path}`"), e))
            }
            Err(_) => Err(to_env(
                &what,
                &super::api::ApiError::Transport {
                    message: format!("not done within {}s", TRANSFER_TIMEOUT.as_secs()),
                    retryable: true,
                },
            )),
        }
    }

    /// Runs a helper command that must succeed.
    async fn must_run(
        &self,
        sandbox: &RemoteSandbox,
        command: String,
        what: &str,
    ) -> Result<(), EnvError> {
        let output = self
            .exec_in(
                sandbox,
                &ExecSpec {
                    command,
                    deadline: Some(TRANSFER_TIMEOUT),
                    ..ExecSpec::default()
                },
            )
            .await?;
        if output.exit_code == Some(0) {
            return Ok(());
        }
        Err(EnvError::engine(
            Provider::Daytona,
            format!(
                "{what} in sandbox `{}` failed (exit code {:?}): {} (hint: the image needs `tar`, \
             `base64` and `bash`)",
                sandbox.id,
                output.exit_code,
                output.stdout.trim()
            ),
        ))
    }
}

/// The script the toolbox runs: record the pid (for a kill at the deadline), export the
/// environment, then become `bash -c COMMAND`.
fn wrapper(
    command: &str,
    env: &BTreeMap<String, String>,
    pid_file: &str,
) -> Result<String, EnvError> {
    let mut script = format!("echo $$ > {}\n", shell_quote(pid_file));
    for (name, value) in env {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(EnvError::Unsupported(format!(
                "`{name}` is not a valid environment variable name"
            )));
        }
        script.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    script.push_str(&format!("exec bash -c {}\n", shell_quote(command)));
    Ok(script)
}

/// `sh -c "echo <base64> | base64 -d | sh"`: no quote or space inside the quotes.
fn encoded(script: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(script);
    format!("sh -c \"echo {b64} | base64 -d | sh\"")
}

/// The answer did not come within the command's deadline and the grace after it.
fn is_late(error: &super::api::ApiError) -> bool {
    matches!(error, super::api::ApiError::Transport { message, .. } if message.starts_with("no answer within"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_survive_the_toolbox_parser_and_the_shell() {
        let env = BTreeMap::from([("GREETING".to_string(), "it's \"quoted\" $HOME".to_string())]);
        let script = wrapper("echo \"$GREETING\" | tr a-z A-Z", &env, "/tmp/p").unwrap();
        let command = encoded(&script);
        // The toolbox splits on spaces outside quotes: three words, the last the script.
        let inner = command
            .strip_prefix("sh -c \"")
            .and_then(|c| c.strip_suffix('"'))
            .unwrap();
        assert!(!inner.contains(['"', '\'']));
        let out = std::process::Command::new("sh")
            .args(["-c", inner])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "IT'S \"QUOTED\" $HOME\n"
        );
    }

    #[test]
    fn bad_variable_names_are_refused() {
        let env = BTreeMap::from([("A-B".to_string(), "x".to_string())]);
        assert!(matches!(
            wrapper("true", &env, "/tmp/p"),
            Err(EnvError::Unsupported(_))
        ));
    }
}
