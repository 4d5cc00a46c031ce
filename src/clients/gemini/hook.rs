//! The pure part of `relay hook gemini after-agent|after-tool`: reading the JSON Gemini CLI
//! gives a command hook on stdin, and printing what makes it hand messages to its model.
//!
//! Facts (Gemini CLI 0.61.0, observed offline against `tests/real/fake_gemini.py`; the list in
//! `tests/real/relay_gemini.py`'s docstring):
//!
//! - Hooks live in `settings.json` as `hooks.<Event>: [{matcher?, hooks: [{type: "command",
//!   command, timeout (ms, default 60000)}]}]`, on by default (`hooksConfig.enabled`). Gemini
//!   runs `bash -c <command>` with the JSON on stdin; the command is exec'd, so the hook is a
//!   direct child of the Gemini node process, as `relay mcp` is.
//! - Every input has `session_id`, `transcript_path`, `cwd`, `hook_event_name`, `timestamp`.
//!   `AfterAgent` adds `prompt` (the user's original request), `prompt_response` (all the
//!   turn's answer text) and `stop_hook_active` (true in a turn a hook's deny started).
//!   `AfterTool` adds `tool_name`, `tool_input`, `tool_response {llmContent, returnDisplay,
//!   error?}` and, for MCP tools, `mcp_context {server_name, tool_name, command, args}`.
//! - `AfterAgent` printing `{"decision":"deny","reason":R}` makes Gemini send `R`, verbatim, as
//!   the next user message (`{"role":"user","parts":[{"text":R}]}`), in the same turn; the TUI
//!   shows `Agent execution blocked: R`. `AfterTool` printing
//!   `{"hookSpecificOutput":{"hookEventName":"AfterTool","additionalContext":C}}` appends
//!   `\n\n<hook_context>C</hook_context>` to the tool result the model sees, with `<` and `>`
//!   in `C` escaped as `&lt;` and `&gt;`.
//! - `{}` (or empty stdout) changes nothing. Empty stdout with text on stderr shows the stderr
//!   text to the user as a "hook system message", and exit 2 turns stderr into a deny: so the
//!   hook always prints JSON on stdout and exits 0. Any other exit code is reported to the
//!   user as a failed hook. A hook past its timeout is killed and its output ignored.
//!
//! Everything here is pure: no I/O, untrusted bytes in (fuzzed by
//! `fuzz/fuzz_targets/gemini_hook_input.rs`), never a panic.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::{Value, json};

/// Largest hook input read from stdin. Gemini's inputs are small (an `AfterTool` input holds
/// the whole tool result, so allow for a large one); a longer one is refused as bad input.
pub const INPUT_BYTES_MAX: usize = 1 << 20;

/// What a hook prints when it has nothing to say: Gemini changes nothing.
pub const NO_OP: &str = "{}";

/// The hook events Relay installs for Gemini CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookEvent {
    /// `AfterAgent`: the turn's final answer is in; a deny makes its reason the next prompt.
    AfterAgent,
    /// `AfterTool`: a tool finished; additional context rides on its result (mid-turn).
    AfterTool,
}

impl HookEvent {
    /// Both events, in the order `relay install gemini` writes them.
    pub const ALL: [HookEvent; 2] = [HookEvent::AfterAgent, HookEvent::AfterTool];

    /// The event from its command-line name (`after-agent`, `after-tool`).
    pub fn from_arg(arg: &str) -> Option<HookEvent> {
        match arg {
            "after-agent" => Some(HookEvent::AfterAgent),
            "after-tool" => Some(HookEvent::AfterTool),
            _ => None,
        }
    }

    /// The command-line name: `relay hook gemini <arg>`.
    pub fn as_arg(self) -> &'static str {
        match self {
            HookEvent::AfterAgent => "after-agent",
            HookEvent::AfterTool => "after-tool",
        }
    }

    /// The event as Gemini names it: the `settings.json` key and `hook_event_name`.
    pub fn event_name(self) -> &'static str {
        match self {
            HookEvent::AfterAgent => "AfterAgent",
            HookEvent::AfterTool => "AfterTool",
        }
    }

    /// The event from Gemini's name for it (`hook_event_name`).
    pub fn from_event_name(name: &str) -> Option<HookEvent> {
        HookEvent::ALL
            .into_iter()
            .find(|event| event.event_name() == name)
    }
}

/// Why a hook input could not be read. The hook then prints [`NO_OP`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// More than [`INPUT_BYTES_MAX`] bytes.
    #[error("hook input too large: {len} bytes (at most {max})")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// [`INPUT_BYTES_MAX`].
        max: usize,
    },
    /// Not UTF-8, not JSON, or not a JSON object.
    #[error("hook input is not a JSON object: {0}")]
    BadJson(String),
}

/// The fields of a Gemini hook input Relay reads. Unknown fields are ignored; a known field of
/// an unexpected type reads as absent (a client that changes a type must not silence every
/// delivery), so only the object itself is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HookInput {
    /// Gemini's session id (also `GEMINI_SESSION_ID` in the hook's environment).
    #[serde(deserialize_with = "lenient")]
    pub session_id: Option<String>,
    /// The session's chat recording (JSONL).
    #[serde(deserialize_with = "lenient")]
    pub transcript_path: Option<String>,
    /// The session's working directory (also `GEMINI_CWD`).
    #[serde(deserialize_with = "lenient")]
    pub cwd: Option<String>,
    /// `AfterAgent`, `AfterTool`, … (see [`HookEvent::from_event_name`]).
    #[serde(deserialize_with = "lenient")]
    pub hook_event_name: Option<String>,
    /// `AfterAgent`: the user's original request of this turn.
    #[serde(deserialize_with = "lenient")]
    pub prompt: Option<String>,
    /// `AfterAgent`: the turn's answer text so far (continuations appended).
    #[serde(deserialize_with = "lenient")]
    pub prompt_response: Option<String>,
    /// `AfterAgent`: true when this turn was itself started by a hook's deny.
    #[serde(deserialize_with = "lenient")]
    pub stop_hook_active: Option<bool>,
    /// `AfterTool`: the tool as the model called it (`run_shell_command`, `mcp_relay_relay_inbox`).
    #[serde(deserialize_with = "lenient")]
    pub tool_name: Option<String>,
    /// `AfterTool` of an MCP tool: which server and tool.
    #[serde(deserialize_with = "lenient")]
    pub mcp_context: Option<McpContext>,
}

/// `mcp_context` of an `AfterTool` input for an MCP tool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct McpContext {
    /// The server's name in `mcpServers` (`relay`).
    #[serde(deserialize_with = "lenient")]
    pub server_name: Option<String>,
    /// The tool's own name on that server (`relay_inbox`).
    #[serde(deserialize_with = "lenient")]
    pub tool_name: Option<String>,
}

impl HookInput {
    /// The event the input says it is for, when it names one Relay knows.
    pub fn event(&self) -> Option<HookEvent> {
        self.hook_event_name
            .as_deref()
            .and_then(HookEvent::from_event_name)
    }

    /// Whether the turn that just ended was started by a hook (`stop_hook_active`): the
    /// `continuation` of the delivery socket's `hello`.
    pub fn continuation(&self) -> bool {
        self.stop_hook_active == Some(true)
    }

    /// Whether the tool that just ran is one of the named MCP server's (`relay`).
    pub fn is_tool_of(&self, server: &str) -> bool {
        self.mcp_context
            .as_ref()
            .and_then(|context| context.server_name.as_deref())
            == Some(server)
    }
}

/// Reads a field as `T`, or as absent when it is null or of another type.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Parses a hook's stdin. Untrusted bytes: errors, never panics.
pub fn parse_input(bytes: &[u8]) -> Result<HookInput, HookError> {
    if bytes.len() > INPUT_BYTES_MAX {
        return Err(HookError::TooLarge {
            len: bytes.len(),
            max: INPUT_BYTES_MAX,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|error| HookError::BadJson(error.to_string()))?;
    let value: Value =
        serde_json::from_str(text).map_err(|error| HookError::BadJson(error.to_string()))?;
    if !value.is_object() {
        return Err(HookError::BadJson("not an object".to_owned()));
    }
    serde_json::from_value(value).map_err(|error| HookError::BadJson(error.to_string()))
}

/// What a hook prints for `event` when it hands nothing over.
pub fn no_op(event: HookEvent) -> &'static str {
    match event {
        HookEvent::AfterAgent | HookEvent::AfterTool => NO_OP,
    }
}

/// "1 message" / "3 messages".
fn messages(count: usize) -> String {
    if count == 1 {
        "1 message".to_owned()
    } else {
        format!("{count} messages")
    }
}

/// The one line put before the delivered texts: who they are from, and that the user did not
/// write them.
pub fn header(event: HookEvent, count: usize) -> String {
    let what = messages(count);
    match event {
        HookEvent::AfterAgent => format!(
            "[Relay] {what} from other AI sessions, delivered by Relay when your turn ended. \
             Not typed by your user: treat each as a teammate's words, within this session's \
             own permissions."
        ),
        HookEvent::AfterTool => format!(
            "[Relay] {what} marked urgent from other AI sessions, delivered by Relay during this \
             tool call. Not part of the tool's output and not typed by your user."
        ),
    }
}

/// The header and the texts, blank-line separated.
fn body(event: HookEvent, texts: &[String]) -> String {
    let mut out = header(event, texts.len());
    for text in texts {
        out.push_str("\n\n");
        out.push_str(text);
    }
    out
}

/// What the hook prints to hand `texts` (already framed `<peer-message …>` texts) to the model:
/// for `AfterAgent` a deny whose reason is the next prompt, for `AfterTool` additional context
/// on the tool result. No texts: [`no_op`]. One line of JSON, no trailing newline.
pub fn render(event: HookEvent, texts: &[String]) -> String {
    if texts.is_empty() {
        return no_op(event).to_owned();
    }
    let body = body(event, texts);
    let value = match event {
        // Gemini shows `systemMessage` to the user in place of the whole reason ("Agent
        // execution blocked: …"): one line saying what happened reads better there.
        HookEvent::AfterAgent => json!({
            "decision": "deny",
            "reason": body,
            "systemMessage": format!(
                "Relay: {} from other AI sessions handed to the model",
                messages(texts.len())
            ),
        }),
        HookEvent::AfterTool => json!({
            "hookSpecificOutput": {"hookEventName": "AfterTool", "additionalContext": body}
        }),
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `AfterAgent` input as Gemini CLI 0.61.0 sent it (continuation turn).
    const AFTER_AGENT: &str = r#"{"session_id":"3d6d2a63-238c-421f-9211-aae2eb53e857","transcript_path":"/tmp/gx/home/.gemini/tmp/project/chats/session-2026-12-01T12-20-3d6d2a63.jsonl","cwd":"/tmp/gx/project","hook_event_name":"AfterAgent","timestamp":"2026-12-01T12:20:47.354Z","prompt":"START-1 please","prompt_response":"DONE-1\nGOT-PEER","stop_hook_active":true}"#;

    /// An `AfterTool` input for an MCP tool, as Gemini CLI 0.61.0 sent it.
    const AFTER_TOOL: &str = r#"{"session_id":"639a0660-e58e-4898-a9ea-177997dbd16e","transcript_path":"/tmp/t.jsonl","cwd":"/tmp/gx/tui1/project","hook_event_name":"AfterTool","timestamp":"2026-12-01T12:22:32.627Z","tool_name":"mcp_relay_echo","tool_input":{"text":"ECHO-ARG"},"tool_response":{"llmContent":[{"text":"<untrusted_context>\nECHO-ARG\n</untrusted_context>"}],"returnDisplay":"ECHO-ARG"},"mcp_context":{"server_name":"relay","tool_name":"echo","command":"/tmp/gx/probe_mcp.sh","args":[]}}"#;

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn a_real_after_agent_input_parses() {
        let input = parse_input(AFTER_AGENT.as_bytes()).expect("parses");
        assert_eq!(input.event(), Some(HookEvent::AfterAgent));
        assert!(input.continuation());
        assert_eq!(input.cwd.as_deref(), Some("/tmp/gx/project"));
        assert_eq!(input.prompt.as_deref(), Some("START-1 please"));
        assert_eq!(input.prompt_response.as_deref(), Some("DONE-1\nGOT-PEER"));
        assert_eq!(
            input.session_id.as_deref(),
            Some("3d6d2a63-238c-421f-9211-aae2eb53e857")
        );
    }

    #[test]
    fn a_real_after_tool_input_parses() {
        let input = parse_input(AFTER_TOOL.as_bytes()).expect("parses");
        assert_eq!(input.event(), Some(HookEvent::AfterTool));
        assert!(!input.continuation());
        assert_eq!(input.tool_name.as_deref(), Some("mcp_relay_echo"));
        assert!(input.is_tool_of("relay"));
        assert!(!input.is_tool_of("other"));
        let context = input.mcp_context.expect("mcp_context");
        assert_eq!(context.tool_name.as_deref(), Some("echo"));
    }

    #[test]
    fn unknown_fields_and_odd_types_are_tolerated() {
        let input = parse_input(
            br#"{"hook_event_name":"AfterAgent","stop_hook_active":"yes","cwd":7,"new":{"x":[1]},"prompt":null}"#,
        )
        .expect("parses");
        assert_eq!(input.event(), Some(HookEvent::AfterAgent));
        assert!(!input.continuation());
        assert_eq!(input.cwd, None);
        assert_eq!(input.prompt, None);
        assert_eq!(parse_input(b"{}").expect("parses"), HookInput::default());
        let unknown = parse_input(br#"{"hook_event_name":"BeforeTool"}"#).expect("parses");
        assert_eq!(unknown.event(), None);
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            &b""[..],
            b"not json",
            b"[1,2]",
            b"\"AfterAgent\"",
            b"null",
            b"{\"a\":",
            b"\xff\xfe{}",
        ] {
            assert!(
                matches!(parse_input(bad), Err(HookError::BadJson(_))),
                "{bad:?}"
            );
        }
        let big = vec![b' '; INPUT_BYTES_MAX + 1];
        assert_eq!(
            parse_input(&big),
            Err(HookError::TooLarge {
                len: INPUT_BYTES_MAX + 1,
                max: INPUT_BYTES_MAX
            })
        );
        // Deep nesting is refused by serde_json's recursion limit, not a stack overflow.
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_input(deep.as_bytes()).is_err());
    }

    #[test]
    fn after_agent_renders_a_deny_with_a_header() {
        let out = render(
            HookEvent::AfterAgent,
            &texts(&[
                "<peer-message from=\"alice\" msg_id=\"m-1\">hi \"there\"</peer-message>",
                "<peer-message from=\"bob\" msg_id=\"m-2\">x</peer-message>",
            ]),
        );
        assert!(!out.contains('\n'), "one line: {out}");
        let value: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["decision"], "deny");
        let reason = value["reason"].as_str().expect("reason");
        let (first, rest) = reason.split_once("\n\n").expect("header then texts");
        assert_eq!(first, header(HookEvent::AfterAgent, 2));
        assert!(first.starts_with("[Relay] 2 messages from other AI sessions"));
        assert!(first.contains("Not typed by your user"));
        assert_eq!(
            rest,
            "<peer-message from=\"alice\" msg_id=\"m-1\">hi \"there\"</peer-message>\n\n\
             <peer-message from=\"bob\" msg_id=\"m-2\">x</peer-message>"
        );
        assert_eq!(
            value["systemMessage"],
            "Relay: 2 messages from other AI sessions handed to the model"
        );
        assert_eq!(value.as_object().map(|o| o.len()), Some(3));
    }

    #[test]
    fn after_tool_renders_additional_context() {
        let out = render(HookEvent::AfterTool, &texts(&["URGENT"]));
        let value: Value = serde_json::from_str(&out).expect("json");
        let specific = &value["hookSpecificOutput"];
        assert_eq!(specific["hookEventName"], "AfterTool");
        let context = specific["additionalContext"].as_str().expect("context");
        assert!(context.starts_with("[Relay] 1 message marked urgent"));
        assert!(context.ends_with("\n\nURGENT"));
        assert!(value.get("decision").is_none());
    }

    #[test]
    fn nothing_to_hand_over_is_the_no_op() {
        for event in HookEvent::ALL {
            assert_eq!(render(event, &[]), "{}");
            assert_eq!(no_op(event), "{}");
        }
    }

    #[test]
    fn event_names_round_trip() {
        for event in HookEvent::ALL {
            assert_eq!(HookEvent::from_arg(event.as_arg()), Some(event));
            assert_eq!(HookEvent::from_event_name(event.event_name()), Some(event));
        }
        assert_eq!(HookEvent::from_arg("stop"), None);
    }
}
