//! JSON config files as `relay install` edits them: a value type that keeps object keys in file
//! order, the parser (absent or blank file = `{}`) and the renderer (two-space indents), and
//! the few edits the installers make (set an entry, merge an entry, remove an entry).
//!
//! Invariant: a parsed and re-rendered file differs from the original only in whitespace and
//! where an edit changed it; keys stay in their places, new keys go last.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

use super::{Edit, InstallError};

/// A JSON value that keeps object keys in file order, so a rewritten file differs from the
/// user's only where Relay changed it. (serde_json's `Value` sorts keys unless its
/// `preserve_order` feature is on, and that feature would grow every `Value` in the crate.)
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json read it.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in file order.
    Object(JsonObject),
}

/// Object members in file order. A repeated key keeps its first place and its last value, as
/// JavaScript's `JSON.parse` does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JsonObject(pub Vec<(String, Json)>);

impl Json {
    /// A string value.
    pub fn string(text: &str) -> Json {
        Json::String(text.to_owned())
    }

    /// An array of strings.
    pub fn strings<'text>(items: impl IntoIterator<Item = &'text str>) -> Json {
        Json::Array(items.into_iter().map(Json::string).collect())
    }

    /// An object of these members, in this order.
    pub fn object<'key>(members: impl IntoIterator<Item = (&'key str, Json)>) -> Json {
        Json::Object(JsonObject(
            members
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        ))
    }

    /// The member `key` of an object; `None` for anything else.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(object) => object.get(key),
            _ => None,
        }
    }

    /// Whether this is the string `text`.
    pub fn is_str(&self, text: &str) -> bool {
        self.as_str() == Some(text)
    }

    /// Whether this is an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&Vec<Json>> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The items of an array, to change.
    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Json>> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members of an object, to change.
    pub fn as_object_mut(&mut self) -> Option<&mut JsonObject> {
        match self {
            Json::Object(object) => Some(object),
            _ => None,
        }
    }
}

impl JsonObject {
    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(name, _)| name == key)
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.position(key).map(|index| &self.0[index].1)
    }

    /// The value at `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        self.position(key).map(|index| &mut self.0[index].1)
    }

    /// Whether `key` is a member.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` in its place, or at the end when it is new.
    pub fn insert(&mut self, key: String, value: Json) {
        match self.position(&key) {
            Some(index) => self.0[index].1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Removes `key`, keeping the order of the rest.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        self.position(key).map(|index| self.0.remove(index).1)
    }

    /// The value at `key`, first set to `default()` at the end when absent.
    pub fn get_or_insert_with(&mut self, key: &str, default: impl FnOnce() -> Json) -> &mut Json {
        let index = match self.position(key) {
            Some(index) => index,
            None => {
                self.0.push((key.to_owned(), default()));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }
}

/// Parses a config file's bytes; an absent or blank file is an empty object.
///
/// # Errors
/// [`InstallError::InvalidJson`] (or [`InstallError::JsonWithComments`] when the text looks
/// like JSONC), [`InstallError::UnexpectedShape`] when the top level is not an object.
pub fn parse_document(path: &Path, bytes: Option<&[u8]>) -> Result<JsonObject, InstallError> {
    let Some(bytes) = bytes.filter(|bytes| !bytes.iter().all(u8::is_ascii_whitespace)) else {
        return Ok(JsonObject::default());
    };
    match serde_json::from_slice(bytes) {
        Ok(Json::Object(document)) => Ok(document),
        Ok(_) => Err(InstallError::UnexpectedShape {
            path: path.to_owned(),
            key: "the top level",
            expected: "an object",
        }),
        Err(parse_error) if has_comment(bytes) => Err(InstallError::JsonWithComments {
            path: path.to_owned(),
            parse_error,
        }),
        Err(parse_error) => Err(InstallError::InvalidJson {
            path: path.to_owned(),
            parse_error,
        }),
    }
}

/// Whether a line of the text starts with `//` or the text holds `/*`: JSONC comments, which
/// some clients (OpenCode) accept and serde_json does not.
fn has_comment(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.contains("/*") || text.lines().any(|line| line.trim_start().starts_with("//"))
}

/// Pretty JSON with two-space indents, as the clients write it, ending in a newline unless
/// the original did not.
pub fn render_document(document: &JsonObject, original: Option<&[u8]>) -> Vec<u8> {
    let mut content = Vec::new();
    document.render_into(&mut content, 0);
    if original.is_none_or(|original| original.ends_with(b"\n")) {
        content.push(b'\n');
    }
    content
}

/// Indent of one level in rendered files.
const INDENT: &[u8] = b"  ";

impl Json {
    /// Renders like `serde_json::to_vec_pretty`, without a fallible serializer.
    fn render_into(&self, out: &mut Vec<u8>, depth: usize) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(value) => out.extend_from_slice(if *value { b"true" } else { b"false" }),
            Json::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
            Json::String(text) => render_string(out, text),
            Json::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
            Json::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    newline(out, depth + 1);
                    item.render_into(out, depth + 1);
                }
                newline(out, depth);
                out.push(b']');
            }
            Json::Object(object) => object.render_into(out, depth),
        }
    }
}

impl JsonObject {
    fn render_into(&self, out: &mut Vec<u8>, depth: usize) {
        if self.0.is_empty() {
            out.extend_from_slice(b"{}");
            return;
        }
        out.push(b'{');
        for (index, (key, value)) in self.0.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            newline(out, depth + 1);
            render_string(out, key);
            out.extend_from_slice(b": ");
            value.render_into(out, depth + 1);
        }
        newline(out, depth);
        out.push(b'}');
    }
}

fn newline(out: &mut Vec<u8>, depth: usize) {
    out.push(b'\n');
    for _ in 0..depth {
        out.extend_from_slice(INDENT);
    }
}

/// A JSON string literal, escaped as serde_json escapes it.
fn render_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for character in text.chars() {
        match character {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            control if (control as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", control as u32).as_bytes());
            }
            other => {
                let mut buffer = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A one-line JSON array of strings (`["a", "b"]`), also a JavaScript array literal.
pub fn string_array_literal(items: &[String]) -> String {
    let mut out = vec![b'['];
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.extend_from_slice(b", ");
        }
        render_string(&mut out, item);
    }
    out.push(b']');
    String::from_utf8_lossy(&out).into_owned()
}

/// The object at `keys` (member names from the top level down), each level inserted empty at
/// the end when absent.
///
/// # Errors
/// [`InstallError::UnexpectedShape`] naming `label` when a level is not an object.
pub fn object_at<'document>(
    document: &'document mut JsonObject,
    keys: &[&str],
    label: &'static str,
    path: &Path,
) -> Result<&'document mut JsonObject, InstallError> {
    let mut object = document;
    for key in keys {
        object = object
            .get_or_insert_with(key, || Json::Object(JsonObject::default()))
            .as_object_mut()
            .ok_or_else(|| not_an_object(path, label))?;
    }
    Ok(object)
}

/// The object at `keys` if every level is present; nothing is inserted.
///
/// # Errors
/// [`InstallError::UnexpectedShape`] naming `label` when a present level is not an object.
pub fn existing_object_at<'document>(
    document: &'document mut JsonObject,
    keys: &[&str],
    label: &'static str,
    path: &Path,
) -> Result<Option<&'document mut JsonObject>, InstallError> {
    let mut object = document;
    for key in keys {
        let Some(value) = object.get_mut(key) else {
            return Ok(None);
        };
        object = value
            .as_object_mut()
            .ok_or_else(|| not_an_object(path, label))?;
    }
    Ok(Some(object))
}

/// The error for a key that should hold an object.
pub fn not_an_object(path: &Path, key: &'static str) -> InstallError {
    InstallError::UnexpectedShape {
        path: path.to_owned(),
        key,
        expected: "an object",
    }
}

/// The error for a key that should hold an array.
pub fn not_an_array(path: &Path, key: &'static str) -> InstallError {
    InstallError::UnexpectedShape {
        path: path.to_owned(),
        key,
        expected: "an array",
    }
}

/// Sets the entry `name` of `parent` to hold `ours`: absent, it is added with exactly these
/// members; an object already there keeps its other members (an `env` the user added, say)
/// and gets each of ours that differs; anything else there is replaced.
pub fn merge_entry(
    parent: &mut JsonObject,
    name: &str,
    ours: JsonObject,
    label: &'static str,
) -> Edit {
    match parent.get_mut(name) {
        Some(Json::Object(existing)) => {
            let mut changed = false;
            for (key, value) in ours.0 {
                if existing.get(&key) != Some(&value) {
                    existing.insert(key, value);
                    changed = true;
                }
            }
            if changed {
                Edit::Replace(label)
            } else {
                Edit::AlreadyPresent(label)
            }
        }
        Some(other) => {
            *other = Json::Object(ours);
            Edit::Replace(label)
        }
        None => {
            parent.insert(name.to_owned(), Json::Object(ours));
            Edit::Add(label)
        }
    }
}

/// Removes the entry `name` of the object at `keys`, if there is one.
///
/// # Errors
/// [`InstallError::UnexpectedShape`] when a level of `keys` is not an object.
pub fn remove_entry(
    document: &mut JsonObject,
    keys: &[&str],
    name: &str,
    label: &'static str,
    path: &Path,
) -> Result<Edit, InstallError> {
    let removed = existing_object_at(document, keys, label, path)?
        .and_then(|parent| parent.remove(name))
        .is_some();
    Ok(if removed {
        Edit::Remove(label)
    } else {
        Edit::AlreadyAbsent(label)
    })
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(value) => serializer.serialize_bool(*value),
            Json::Number(number) => number.serialize(serializer),
            Json::String(text) => serializer.serialize_str(text),
            Json::Array(items) => serializer.collect_seq(items),
            Json::Object(object) => object.serialize(serializer),
        }
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(value)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = JsonObject::default();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            object.insert(key, value);
        }
        Ok(Json::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(text: &str) -> JsonObject {
        parse_document(Path::new("x.json"), Some(text.as_bytes())).expect("valid document")
    }

    #[test]
    fn blank_file_is_an_empty_object_and_a_list_is_refused() {
        assert_eq!(document(" \n"), JsonObject::default());
        let error = parse_document(Path::new("x.json"), Some(b"[1]")).expect_err("not an object");
        assert!(matches!(
            error,
            InstallError::UnexpectedShape {
                key: "the top level",
                ..
            }
        ));
    }

    #[test]
    fn comments_get_their_own_error() {
        let error = parse_document(Path::new("o.json"), Some(b"{\n  // mine\n  \"a\": 1\n}"))
            .expect_err("comments");
        assert!(
            matches!(error, InstallError::JsonWithComments { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("o.json"), "{error}");
    }

    #[test]
    fn values_render_as_they_were_written_and_a_repeated_key_keeps_its_first_place() {
        let text =
            r#"{"n":-1,"f":0.5,"big":12345678901234,"u":"é\"\n\u0001","z":null,"b":false,"n":2}"#;
        let rendered = serde_json::to_string(&document(text)).expect("serializes");
        assert_eq!(
            rendered,
            r#"{"n":2,"f":0.5,"big":12345678901234,"u":"é\"\n\u0001","z":null,"b":false}"#
        );
    }

    #[test]
    fn rendering_matches_serde_json_pretty() {
        let text = r#"{"zeta":1,"alpha":{"b":[],"a":[1,{"c":{}}]},"s":"\t\u001f\"é"}"#;
        let parsed = document(text);
        let ours = render_document(&parsed, Some(b"x"));
        let theirs = serde_json::to_vec_pretty(&parsed).expect("serializes");
        assert_eq!(
            String::from_utf8(ours).expect("utf-8"),
            String::from_utf8(theirs).expect("utf-8")
        );
    }

    #[test]
    fn rendering_keeps_key_order_and_a_missing_final_newline() {
        let text = r#"{"zeta":1,"alpha":{"b":2,"a":3}}"#;
        let rendered = render_document(&document(text), Some(text.as_bytes()));
        let rendered = String::from_utf8(rendered).expect("utf-8");
        assert_eq!(
            rendered,
            "{\n  \"zeta\": 1,\n  \"alpha\": {\n    \"b\": 2,\n    \"a\": 3\n  }\n}"
        );
    }

    #[test]
    fn string_array_literal_escapes_like_json() {
        let items = ["/a b/relay".to_owned(), "say \"hi\"".to_owned()];
        let literal = string_array_literal(&items);
        assert_eq!(literal, r#"["/a b/relay", "say \"hi\""]"#);
        let parsed: Vec<String> = serde_json::from_str(&literal).expect("json");
        assert_eq!(parsed, items);
    }

    #[test]
    fn merge_keeps_other_members_and_reports_no_change_when_equal() {
        let mut parent = document(r#"{"relay":{"command":"old","env":{"A":"1"}}}"#);
        let ours = || match Json::object([("command", Json::string("new"))]) {
            Json::Object(object) => object,
            _ => unreachable!(),
        };
        assert_eq!(
            merge_entry(&mut parent, "relay", ours(), "x"),
            Edit::Replace("x")
        );
        assert_eq!(
            serde_json::to_value(&parent).expect("value"),
            serde_json::json!({"relay": {"command": "new", "env": {"A": "1"}}})
        );
        assert_eq!(
            merge_entry(&mut parent, "relay", ours(), "x"),
            Edit::AlreadyPresent("x")
        );
    }
}
