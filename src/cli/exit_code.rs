//! Process exit codes, one enum, listed in `--help` and `docs/operations.md`.

/// How `relay` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Success = 0,
    /// The command failed; the error was printed.
    Failed = 1,
    /// Usage error (clap's default).
    Usage = 2,
    /// A check found problems (`relay log verify`, `relay replay` on a damaged record, a
    /// failed `relay doctor` check).
    CheckFailed = 3,
    /// No hub reachable.
    NoHub = 4,
}

/// The exit-code table shown at the end of `relay --help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 success, 1 failed (error printed), 2 usage error, \
3 a check found problems (damaged record, failed verify, failed doctor check), 4 no hub reachable \
(relay status and relay stop when none runs).";

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
