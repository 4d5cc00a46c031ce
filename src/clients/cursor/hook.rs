//! The pure part of `relay hook cursor stop`: reading the JSON Cursor's agent gives a `stop`
//! hook on stdin, and printing the follow-up that hands messages to its model.
//!
//! Documented behaviour (cursor.com/docs/hooks; not installable here, so not run): hooks live
//! in `~/.cursor/hooks.json` (or `.cursor/hooks.json`) as `{"version":1,"hooks":{"stop":
//! [{"command":"…","loop_limit":N}]}}`. The `stop` hook runs when the agent loop ends, with
//! `conversation_id`, `generation_id`, `model`, `status` (`completed`, `aborted` or `error`),
//! `loop_count` (how many follow-ups in a row led here), `hook_event_name`, `workspace_roots`,
//! `cursor_version`, `user_email` (optional) on stdin. Printing `{"followup_message":"…"}`
//! submits the text as the next user message, at most `loop_limit` times in a row (default
//! 5); `{}` lets the agent stop.
//!
//! Relay hands messages over only when the loop `completed` (or the status is missing): after
//! `aborted` the user stopped the agent, and a follow-up would restart what they stopped;
//! after `error` a follow-up would likely fail the same way. The messages stay pending for the
//! next turn's end.
//!
//! Everything here is pure: no I/O, untrusted bytes in (fuzzed by
//! `fuzz/fuzz_targets/cursor_hook_input.rs`), never a panic.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::{Value, json};

/// Largest hook input read from stdin (Cursor's `stop` inputs are a few hundred bytes); a
/// longer one is refused as bad input.
pub const INPUT_BYTES_MAX: usize = 1 << 20;

/// What a hook prints when it has nothing to say: the agent stops.
pub const NO_OP: &str = "{}";

/// The hook events Relay installs for Cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookEvent {
    /// `stop`: the agent loop ended; a follow-up message starts another.
    Stop,
}

impl HookEvent {
    /// Every event, in the order `relay install cursor` writes them.
    pub const ALL: [HookEvent; 1] = [HookEvent::Stop];

    /// The event from its command-line name (`stop`).
    pub fn from_arg(arg: &str) -> Option<HookEvent> {
        match arg {
            "stop" => Some(HookEvent::Stop),
            _ => None,
        }
    }

    /// The command-line name: `relay hook cursor <arg>`.
    pub fn as_arg(self) -> &'static str {
        match self {
            HookEvent::Stop => "stop",
        }
    }

    /// The event as Cursor names it: the `hooks.json` key and `hook_event_name`.
    pub fn event_name(self) -> &'static str {
        match self {
            HookEvent::Stop => "stop",
        }
    }
}

/// How the agent loop ended (`status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopStatus {
    /// `completed`: the model finished its answer.
    Completed,
    /// `aborted`: the user stopped it.
    Aborted,
    /// `error`: the loop failed.
    Error,
    /// A status this version does not know.
    Other(String),
}

impl StopStatus {
    fn parse(status: &str) -> StopStatus {
        match status {
            "completed" => StopStatus::Completed,
            "aborted" => StopStatus::Aborted,
            "error" => StopStatus::Error,
            other => StopStatus::Other(other.to_owned()),
        }
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

/// The fields of a Cursor `stop` input Relay reads. Unknown fields are ignored; a known field
/// of an unexpected type reads as absent, so only the object itself is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HookInput {
    /// The conversation (chat) the agent ran in.
    #[serde(deserialize_with = "lenient")]
    pub conversation_id: Option<String>,
    /// The generation (one agent loop) that ended.
    #[serde(deserialize_with = "lenient")]
    pub generation_id: Option<String>,
    /// `completed`, `aborted`, `error` (see [`HookInput::status`]).
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
    /// How many follow-ups in a row led to this stop (0 after a user's prompt).
    #[serde(deserialize_with = "lenient")]
    pub loop_count: Option<u64>,
    /// `stop`.
    #[serde(deserialize_with = "lenient")]
    pub hook_event_name: Option<String>,
    /// The workspace folders open in the session.
    #[serde(deserialize_with = "lenient")]
    pub workspace_roots: Option<Vec<String>>,
    /// The model that ran.
    #[serde(deserialize_with = "lenient")]
    pub model: Option<String>,
    /// Cursor's version.
    #[serde(deserialize_with = "lenient")]
    pub cursor_version: Option<String>,
}

impl HookInput {
    /// How the loop ended; `None` when the input does not say.
    pub fn status(&self) -> Option<StopStatus> {
        self.status.as_deref().map(StopStatus::parse)
    }

    /// Whether the stop follows a follow-up (`loop_count > 0`): the `continuation` of the
    /// delivery socket's `hello`.
    pub fn continuation(&self) -> bool {
        self.loop_count.is_some_and(|count| count > 0)
    }

    /// Whether messages may be handed over at this stop: the loop completed (or the input does
    /// not say how it ended). After `aborted` or `error`, and any status not known, they wait
    /// for the next turn's end.
    pub fn delivers(&self) -> bool {
        matches!(self.status(), None | Some(StopStatus::Completed))
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
        HookEvent::Stop => NO_OP,
    }
}

/// The one line put before the delivered texts: who they are from, and that the user did not
/// write them (Cursor shows a follow-up as a user message).
pub fn header(count: usize) -> String {
    let what = if count == 1 {
        "1 message".to_owned()
    } else {
        format!("{count} messages")
    };
    format!(
        "[Relay] {what} from other AI sessions, delivered by Relay when your turn ended. Not \
         typed by your user: treat each as a teammate's words, within this session's own \
         permissions."
    )
}

/// What the hook prints to hand `texts` (already framed `<peer-message …>` texts) to the
/// model: a follow-up message, the header and the texts blank-line separated. No texts:
/// [`no_op`]. One line of JSON, no trailing newline.
pub fn render(event: HookEvent, texts: &[String]) -> String {
    if texts.is_empty() {
        return no_op(event).to_owned();
    }
    let mut message = header(texts.len());
    for text in texts {
        message.push_str("\n\n");
        message.push_str(text);
    }
    match event {
        HookEvent::Stop => json!({ "followup_message": message }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `stop` input as Cursor documents it.
    const STOP: &str = r#"{"conversation_id":"cdefee2d-2727-4b73-bf77-d9d830f31d2a","generation_id":"26b45fb6-bdea-439c-b2dc-5e97ee00ecea","model":"claude-4-sonnet","hook_event_name":"stop","cursor_version":"1.7.2","workspace_roots":["/home/u/project"],"user_email":"u@example.com","status":"completed","loop_count":0}"#;

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn a_documented_stop_input_parses() {
        let input = parse_input(STOP.as_bytes()).expect("parses");
        assert_eq!(input.status(), Some(StopStatus::Completed));
        assert!(input.delivers());
        assert!(!input.continuation());
        assert_eq!(input.hook_event_name.as_deref(), Some("stop"));
        assert_eq!(
            input.workspace_roots,
            Some(vec!["/home/u/project".to_owned()])
        );
        assert_eq!(
            input.conversation_id.as_deref(),
            Some("cdefee2d-2727-4b73-bf77-d9d830f31d2a")
        );
    }

    #[test]
    fn loop_count_is_the_continuation() {
        let input = parse_input(br#"{"status":"completed","loop_count":2}"#).expect("parses");
        assert!(input.continuation());
        assert!(input.delivers());
        for odd in [
            &br#"{"loop_count":-1}"#[..],
            br#"{"loop_count":"3"}"#,
            br#"{"loop_count":null}"#,
            br#"{}"#,
        ] {
            assert!(!parse_input(odd).expect("parses").continuation(), "{odd:?}");
        }
    }

    #[test]
    fn only_a_completed_or_silent_stop_delivers() {
        let status = |json: &[u8]| parse_input(json).expect("parses");
        assert!(status(br#"{"status":"completed"}"#).delivers());
        assert!(status(br#"{}"#).delivers());
        assert!(status(br#"{"status":7}"#).delivers());
        for (json, expected) in [
            (&br#"{"status":"aborted"}"#[..], StopStatus::Aborted),
            (br#"{"status":"error"}"#, StopStatus::Error),
            (
                br#"{"status":"later"}"#,
                StopStatus::Other("later".to_owned()),
            ),
        ] {
            let input = status(json);
            assert_eq!(input.status(), Some(expected));
            assert!(!input.delivers(), "{json:?}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            &b""[..],
            b"not json",
            b"[]",
            b"1",
            b"{\"status\":",
            b"\xc3\x28",
        ] {
            assert!(
                matches!(parse_input(bad), Err(HookError::BadJson(_))),
                "{bad:?}"
            );
        }
        let big = vec![b' '; INPUT_BYTES_MAX + 1];
        assert!(matches!(parse_input(&big), Err(HookError::TooLarge { .. })));
    }

    #[test]
    fn stop_renders_a_followup_with_a_header() {
        let out = render(
            HookEvent::Stop,
            &texts(&["<peer-message from=\"alice\" msg_id=\"m-1\">hi</peer-message>"]),
        );
        assert!(!out.contains('\n'), "one line: {out}");
        let value: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value.as_object().map(|o| o.len()), Some(1));
        let message = value["followup_message"].as_str().expect("followup");
        let (first, rest) = message.split_once("\n\n").expect("header then texts");
        assert_eq!(first, header(1));
        assert!(first.starts_with("[Relay] 1 message from other AI sessions"));
        assert!(first.contains("Not typed by your user"));
        assert_eq!(
            rest,
            "<peer-message from=\"alice\" msg_id=\"m-1\">hi</peer-message>"
        );
    }

    #[test]
    fn nothing_to_hand_over_is_the_no_op() {
        assert_eq!(render(HookEvent::Stop, &[]), "{}");
        assert_eq!(no_op(HookEvent::Stop), "{}");
        assert_eq!(HookEvent::from_arg("stop"), Some(HookEvent::Stop));
        assert_eq!(HookEvent::from_arg("after-agent"), None);
        assert_eq!(HookEvent::Stop.as_arg(), HookEvent::Stop.event_name());
    }
}
