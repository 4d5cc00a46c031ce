//! Who this MCP session says it is when it registers with the hub: a fixed name, or a hint
//! the hub turns into a free name, plus its directory, git branch and client kind.
//!
//! Naming rules, in order: a fixed name (`--as` / `RELAY_PEER_ID`) is taken exactly or not at
//! all; else the session's label (`--session-name` / `RELAY_SESSION_NAME`, else
//! `CLAUDE_SESSION_NAME`) is a hint the hub slugs; else the hub slugs the working directory.
//! After a reconnect the session asks for the name it had, so peers keep reaching it.

use std::path::Path;

use crate::protocol::limits::SESSION_NAME_BYTES_MAX;
use crate::protocol::{
    ClientKind, FieldError, GitBranch, PeerName, RegisterParams, SessionName, WorkingDirectory,
};

use super::limits::GIT_BRANCH_TIMEOUT;

/// Environment variable naming a fixed identity (never suffixed); `--as` wins over it.
pub const PEER_ID_ENV: &str = "RELAY_PEER_ID";

/// Environment variable giving the session's label; `--session-name` wins over it.
pub const SESSION_NAME_ENV: &str = "RELAY_SESSION_NAME";

/// Environment variable read for the label when neither `--session-name` nor
/// `RELAY_SESSION_NAME` is set (the name of a Claude Code session, when the launcher exports
/// it).
pub const CLAUDE_SESSION_NAME_ENV: &str = "CLAUDE_SESSION_NAME";

/// Environment variable giving the client kind; `--client` wins over it.
pub const CLIENT_ENV: &str = "RELAY_CLIENT";

/// What the session registers as, fixed for the life of the process.
#[derive(Clone, Debug)]
pub struct Identity {
    /// A fixed name: taken exactly, or registration fails with `name_taken`.
    pub name: Option<PeerName>,
    /// The session's label: a hint for the name the hub picks.
    pub session_name: Option<SessionName>,
    /// The working directory.
    pub cwd: WorkingDirectory,
    /// The program the session runs in.
    pub client: ClientKind,
}

impl Identity {
    /// The identity of a session started in `cwd`.
    ///
    /// `name` is checked (a fixed name must be a valid name); `session_name` is cut to
    /// [`SESSION_NAME_BYTES_MAX`] bytes; an empty one counts as absent.
    ///
    /// # Errors
    /// The fixed name is not a valid name, or `cwd` is too long.
    pub fn new(
        name: Option<&str>,
        session_name: Option<&str>,
        cwd: &Path,
        client: ClientKind,
    ) -> Result<Identity, FieldError> {
        let name = name
            .filter(|name| !name.is_empty())
            .map(PeerName::new)
            .transpose()?;
        let session_name = session_name
            .map(|label| cut_at_char_boundary(label.trim(), SESSION_NAME_BYTES_MAX))
            .filter(|label| !label.is_empty())
            .map(SessionName::new)
            .transpose()?;
        let cwd = WorkingDirectory::new(cwd.display().to_string())?;
        Ok(Identity {
            name,
            session_name,
            cwd,
            client,
        })
    }

    /// The `register` params: the name held before a reconnect when there is one (so the
    /// session gets its name back), else this identity's own rules.
    pub fn register_params(
        &self,
        previous_name: Option<&str>,
        git_branch: Option<GitBranch>,
        delivery: Option<crate::protocol::DeliveryName>,
    ) -> RegisterParams {
        let name = previous_name
            .and_then(|previous| PeerName::new(previous).ok())
            .or_else(|| self.name.clone());
        RegisterParams {
            name,
            session_name: self.session_name.clone(),
            cwd: self.cwd.clone(),
            git_branch,
            client: self.client,
            delivery,
        }
    }
}

/// The branch checked out in `cwd`: `git rev-parse --abbrev-ref HEAD`, or for a branch
/// without commits yet `git symbolic-ref --short HEAD`. `None` outside a repository, on a
/// detached head, without git, or when git takes longer than [`GIT_BRANCH_TIMEOUT`].
///
/// # Cancel safety
/// Dropping the future kills the git process.
pub async fn git_branch(cwd: &Path) -> Option<GitBranch> {
    let branch = match git_output(cwd, &["rev-parse", "--abbrev-ref", "HEAD"]).await {
        Some(branch) => branch,
        None => git_output(cwd, &["symbolic-ref", "--short", "HEAD"]).await?,
    };
    if branch == "HEAD" {
        return None;
    }
    GitBranch::new(branch).ok()
}

/// The session label from the environment: `RELAY_SESSION_NAME`, else `CLAUDE_SESSION_NAME`.
pub fn session_name_from_env() -> Option<String> {
    [SESSION_NAME_ENV, CLAUDE_SESSION_NAME_ENV]
        .iter()
        .filter_map(|key| std::env::var(key).ok())
        .find(|value| !value.trim().is_empty())
}

/// The trimmed stdout of a successful, non-empty `git <args>` run in `cwd`.
async fn git_output(cwd: &Path, args: &[&str]) -> Option<String> {
    let mut command = tokio::process::Command::new("git");
    command
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(GIT_BRANCH_TIMEOUT, command.output())
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn cut_at_char_boundary(text: &str, bytes_max: usize) -> &str {
    if text.len() <= bytes_max {
        return text;
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnect_asks_for_the_name_held_before() {
        let identity = Identity::new(
            None,
            Some("api work"),
            Path::new("/src/api"),
            ClientKind::Claude,
        )
        .expect("valid");
        let first = identity.register_params(None, None, None);
        assert_eq!(first.name, None);
        assert_eq!(
            first.session_name.as_ref().map(SessionName::as_str),
            Some("api work")
        );
        let again = identity.register_params(Some("api-work-2"), None, None);
        assert_eq!(
            again.name.as_ref().map(PeerName::as_str),
            Some("api-work-2")
        );
    }

    #[test]
    fn a_fixed_name_must_be_a_valid_name() {
        let invalid = Identity::new(Some("a b"), None, Path::new("/"), ClientKind::Codex);
        assert!(invalid.is_err());
        let fixed =
            Identity::new(Some("ci"), None, Path::new("/"), ClientKind::Codex).expect("valid");
        assert_eq!(
            fixed
                .register_params(None, None, None)
                .name
                .as_ref()
                .map(PeerName::as_str),
            Some("ci")
        );
    }

    #[test]
    fn a_long_session_name_is_cut_at_a_character_boundary() {
        let long = "é".repeat(SESSION_NAME_BYTES_MAX);
        let identity =
            Identity::new(None, Some(&long), Path::new("/"), ClientKind::Claude).expect("valid");
        let label = identity.session_name.expect("kept");
        assert!(label.as_str().len() <= SESSION_NAME_BYTES_MAX);
        assert!(label.as_str().chars().all(|character| character == 'é'));
    }

    #[test]
    fn empty_names_count_as_absent() {
        let identity =
            Identity::new(Some(""), Some("  "), Path::new("/"), ClientKind::Claude).expect("valid");
        assert!(identity.name.is_none() && identity.session_name.is_none());
    }
}
