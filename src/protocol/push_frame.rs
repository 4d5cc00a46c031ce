//! The hub's two most frequent frames, `message` and `receipt` notifications, written by hand:
//! the same bytes as [`encode_frame`](super::encode_frame) of a [`TypedNotification`] (a
//! property test below holds them equal), without serde's per-field calls and with a string
//! escaper that copies runs of plain text whole.
//!
//! Every message sent makes one push and one or two receipts, and each push carries the whole
//! text: `serde_json` escapes a string byte by byte (`format_escaped_str`), which was about a
//! tenth of the hub's instructions. Here a string is checked 32 bytes at a time with a test
//! the compiler turns into vector instructions, and a chunk with nothing to escape is copied
//! as it is; only a chunk holding a quote, a backslash or a control character goes byte by
//! byte, escaped exactly as `serde_json` does (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`,
//! `\u00XX` with lower-case hex for the other controls; DEL and non-ASCII as they are).
//!
//! [`TypedNotification`]: super::jsonrpc::TypedNotification

use super::jsonrpc::JSONRPC_VERSION;
use super::notification::{MESSAGE_NOTIFICATION, MessagePush, RECEIPT_NOTIFICATION, Receipt};

/// Bytes a string is checked in, at once, for characters to escape.
const ESCAPE_CHUNK_BYTES: usize = 32;

/// The `message` notification frame (newline-terminated) of `push`.
pub fn encode_push_frame(push: &MessagePush<&str>) -> Vec<u8> {
    let strings = push.from.len() + push.text.len() + push.msg_id.len();
    let mut out = Vec::with_capacity(super::frame::ENCODE_CAPACITY_BYTES.max(strings + 256));
    begin(&mut out, MESSAGE_NOTIFICATION);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(push.kind.name().as_bytes());
    out.extend_from_slice(b"\",\"from\":");
    write_str(&mut out, push.from);
    out.extend_from_slice(b",\"text\":");
    write_str(&mut out, push.text);
    out.extend_from_slice(b",\"msg_id\":");
    write_str(&mut out, push.msg_id);
    out.extend_from_slice(b",\"ask_id\":");
    write_optional(&mut out, push.ask_id);
    out.extend_from_slice(b",\"reply_to\":");
    write_optional(&mut out, push.reply_to);
    out.extend_from_slice(b",\"room\":");
    write_optional(&mut out, push.room);
    out.extend_from_slice(b",\"group\":");
    write_optional(&mut out, push.group);
    out.extend_from_slice(b",\"urgent\":");
    write_bool(&mut out, push.urgent);
    out.extend_from_slice(b",\"ts\":");
    write_u64(&mut out, push.ts);
    out.extend_from_slice(b",\"origin_hub\":");
    write_optional(&mut out, push.origin_hub);
    out.extend_from_slice(b",\"late\":");
    write_bool(&mut out, push.late);
    end(&mut out);
    out
}

/// The `receipt` notification frame (newline-terminated) of `receipt`.
pub fn encode_receipt_frame(receipt: &Receipt<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + receipt.msg_id.len() + receipt.to.len());
    begin(&mut out, RECEIPT_NOTIFICATION);
    out.extend_from_slice(b"{\"msg_id\":");
    write_str(&mut out, receipt.msg_id);
    out.extend_from_slice(b",\"to\":");
    write_str(&mut out, receipt.to);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(receipt.status.name().as_bytes());
    out.extend_from_slice(b"\",\"ts\":");
    write_u64(&mut out, receipt.ts);
    end(&mut out);
    out
}

/// `{"jsonrpc":"2.0","method":"<method>","params":` (method names need no escaping).
fn begin(out: &mut Vec<u8>, method: &str) {
    out.extend_from_slice(b"{\"jsonrpc\":\"");
    out.extend_from_slice(JSONRPC_VERSION.as_bytes());
    out.extend_from_slice(b"\",\"method\":\"");
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b"\",\"params\":");
}

/// Closes the params and the notification, and ends the frame.
fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"}}\n");
}

fn write_optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => write_str(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Whether any byte of `chunk` must be escaped in a JSON string. No early exit, so the
/// compiler checks many bytes per instruction.
fn needs_escape(chunk: &[u8]) -> bool {
    chunk.iter().fold(false, |found, &byte| {
        found | (byte < 0x20) | (byte == b'"') | (byte == b'\\')
    })
}

/// `value` as a JSON string, quotes included, escaped as `serde_json` escapes it.
pub(crate) fn write_str(out: &mut Vec<u8>, value: &str) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    for chunk in value.as_bytes().chunks(ESCAPE_CHUNK_BYTES) {
        if needs_escape(chunk) {
            write_escaped(out, chunk);
        } else {
            out.extend_from_slice(chunk);
        }
    }
    out.push(b'"');
}

/// A chunk byte by byte. Splitting a string into chunks may cut a multi-byte character, which
/// is fine: only ASCII bytes are escaped, and every other byte is copied as it is.
fn write_escaped(out: &mut Vec<u8>, chunk: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in chunk {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
            _ => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::encode_frame;
    use crate::protocol::jsonrpc::TypedNotification;
    use crate::protocol::notification::{MessageKind, ReceiptStatus};

    /// Text with every kind of character an escaper can get wrong, in runs long enough to
    /// cross chunk boundaries.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,200}",
            "[a-z\"\\\\\\x00-\\x1f\\x7f\u{e9}\u{2028}\u{1f600} ]{0,100}",
            "[a-z]{0,80}",
        ]
    }

    fn optional() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(text())
    }

    fn kind() -> impl Strategy<Value = MessageKind> {
        prop_oneof![
            Just(MessageKind::Direct),
            Just(MessageKind::Ask),
            Just(MessageKind::Reply),
            Just(MessageKind::Broadcast),
            Just(MessageKind::Room),
            Just(MessageKind::Group),
            Just(MessageKind::System),
            Just(MessageKind::Timeout),
        ]
    }

    fn status() -> impl Strategy<Value = ReceiptStatus> {
        prop_oneof![
            Just(ReceiptStatus::Delivered),
            Just(ReceiptStatus::Read),
            Just(ReceiptStatus::Held),
            Just(ReceiptStatus::Refused),
            Just(ReceiptStatus::Expired),
        ]
    }

    proptest! {
        #[test]
        fn a_push_frame_is_the_bytes_serde_writes(
            kind in kind(),
            from in text(),
            body in text(),
            msg_id in text(),
            ask_id in optional(),
            reply_to in optional(),
            room in optional(),
            group in optional(),
            origin_hub in optional(),
            urgent: bool,
            late: bool,
            ts: u64,
        ) {
            let push = MessagePush {
                kind,
                from: from.as_str(),
                text: body.as_str(),
                msg_id: msg_id.as_str(),
                ask_id: ask_id.as_deref(),
                reply_to: reply_to.as_deref(),
                room: room.as_deref(),
                group: group.as_deref(),
                urgent,
                ts,
                origin_hub: origin_hub.as_deref(),
                late,
            };
            let by_serde = encode_frame(&TypedNotification {
                method: MESSAGE_NOTIFICATION,
                params: &push,
            });
            let by_hand = encode_push_frame(&push);
            prop_assert_eq!(by_hand, by_serde);
        }

        #[test]
        fn a_receipt_frame_is_the_bytes_serde_writes(
            msg_id in text(),
            to in text(),
            status in status(),
            ts: u64,
        ) {
            let receipt = Receipt { msg_id: msg_id.as_str(), to: to.as_str(), status, ts };
            let by_serde = encode_frame(&TypedNotification {
                method: RECEIPT_NOTIFICATION,
                params: &receipt,
            });
            let by_hand = encode_receipt_frame(&receipt);
            prop_assert_eq!(by_hand, by_serde);
        }
    }

    #[test]
    fn every_ascii_character_is_escaped_as_serde_escapes_it() {
        // All together, then each alone among plain letters (a chunk's only special byte),
        // at every position of a chunk.
        let all: String = (0u8..0x80).map(char::from).collect();
        let alone = (0u8..0x80).flat_map(|byte| {
            (0..=ESCAPE_CHUNK_BYTES).map(move |at| {
                let mut text = "a".repeat(ESCAPE_CHUNK_BYTES + 1);
                text.insert(at, char::from(byte));
                text
            })
        });
        for text in std::iter::once(all).chain(alone) {
            let mut by_hand = Vec::new();
            write_str(&mut by_hand, &text);
            let by_serde = serde_json::to_vec(&text).expect("a string serialises");
            assert_eq!(by_hand, by_serde, "{text:?}");
        }
    }
}
