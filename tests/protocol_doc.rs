//! Keeps `docs/protocol.md` and `src/protocol/` equal where they can drift: the error-code
//! table against `ErrorCode::ALL`, the method headings against `Method::ALL`, the codes each
//! method lists, and every example frame, which must parse as what it claims to be.
//!
//! This is a tidy test, not a black-box one, so unlike the conformance suite it imports
//! `relay::protocol`: its job is to compare the spec with the code.

use std::collections::HashMap;
use std::path::Path;

use relay::protocol::{
    AskResult, ClientRequest, ErrorCode, GroupHistoryResult, HelloResult, HubNotification,
    InboxResult, Incoming, Method, RegisterResult, ReplyResult, RequestId, Response, SendResult,
    encode_frame, parse_incoming,
};

fn protocol_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md exists")
}

/// The lines of the `## <title>` section, up to the next `## ` heading.
fn section<'a>(doc: &'a str, title: &str) -> Vec<&'a str> {
    let heading = format!("## {title}");
    doc.lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect()
}

/// Rows of the error-code table: `| `name` | number | meaning |`.
fn error_table(doc: &str) -> Vec<(String, i32, String)> {
    section(doc, "Error codes")
        .into_iter()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "a row has name, number and meaning: {line}");
            let name = cells[0].trim_matches('`').to_owned();
            let number = cells[1]
                .parse()
                .unwrap_or_else(|_| panic!("bad number in {line}"));
            (name, number, cells[2].to_owned())
        })
        .collect()
}

#[test]
fn the_error_code_table_in_the_protocol_doc_equals_error_code_all() {
    let documented = error_table(&protocol_doc());
    let code: Vec<(String, i32, String)> = ErrorCode::ALL
        .iter()
        .map(|code| {
            (
                code.name().to_owned(),
                code.number(),
                code.meaning().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        documented, code,
        "docs/protocol.md and ErrorCode::ALL differ"
    );
}

#[test]
fn every_method_has_a_section_in_the_protocol_doc_in_order() {
    let doc = protocol_doc();
    let headings: Vec<&str> = section(&doc, "Methods")
        .into_iter()
        .filter_map(|line| line.strip_prefix("### `")?.strip_suffix('`'))
        .collect();
    let names: Vec<&str> = Method::ALL.iter().map(|method| method.name()).collect();
    assert_eq!(headings, names);
}

#[test]
fn every_error_code_a_method_lists_exists() {
    let doc = protocol_doc();
    let mut listed = 0;
    for line in doc.lines().filter(|line| line.starts_with("Errors: ")) {
        for name in line.split('`').skip(1).step_by(2) {
            assert!(
                ErrorCode::from_name(name).is_some(),
                "unknown code `{name}` in: {line}"
            );
            listed += 1;
        }
    }
    assert!(listed > 20, "the per-method error lists were not found");
}

#[test]
fn every_example_frame_in_the_protocol_doc_parses_as_what_it_claims() {
    // Requests from the client must parse into typed requests; responses must carry the shape
    // of the result of the request with the same id; pushes must parse as typed
    // notifications. So an example cannot show a frame the code would reject.
    let doc = protocol_doc();
    let mut methods_by_id: HashMap<RequestId, Method> = HashMap::new();
    // A request the protocol module rejects must be followed by exactly its error frame.
    let mut expected_rejection: Option<String> = None;
    let mut frame_count = 0;
    for line in section(&doc, "Example exchanges") {
        let (from_client, frame) = match (line.strip_prefix("--> "), line.strip_prefix("<-- ")) {
            (Some(frame), _) => (true, frame),
            (_, Some(frame)) => (false, frame),
            _ => continue,
        };
        frame_count += 1;
        if let Some(expected) = expected_rejection.take() {
            assert_eq!(
                frame, expected,
                "the documented error differs from the real one"
            );
        }
        let incoming = parse_incoming(frame).unwrap_or_else(|error| panic!("{error}: {frame}"));
        match incoming {
            Incoming::Request(request) => {
                let (id, client_request) = ClientRequest::from_request(request.clone())
                    .map_or_else(
                        |error| {
                            let frame = encode_frame(&error.to_response());
                            let frame = String::from_utf8(frame).expect("frames are UTF-8");
                            expected_rejection = Some(frame.trim_end().to_owned());
                            let method = Method::from_name(&request.method);
                            (error.id.expect("rejections keep the id"), method)
                        },
                        |(id, parsed)| (id, Some(parsed.method())),
                    );
                if let Some(method) = client_request {
                    methods_by_id.insert(id, method);
                }
            }
            Incoming::Notification(notification) => {
                assert!(!from_client, "clients send no notifications: {frame}");
                HubNotification::parse(&notification)
                    .unwrap_or_else(|error| panic!("{error}: {frame}"));
            }
            Incoming::Response(response) => check_example_response(&methods_by_id, response, frame),
        }
    }
    assert!(frame_count >= 20, "the example exchanges were not found");
    assert_eq!(
        expected_rejection, None,
        "a rejected example request has no error after it"
    );
}

fn check_example_response(
    methods_by_id: &HashMap<RequestId, Method>,
    response: Response,
    frame: &str,
) {
    let Some(id) = response.id.clone() else {
        assert!(
            response.outcome.is_err(),
            "only errors have id null: {frame}"
        );
        return;
    };
    let method = methods_by_id.get(&id).copied();
    let decoded = match (method, response.outcome.is_ok()) {
        (_, false) | (Some(Method::Ping), true) => Ok(()),
        (Some(Method::Hello), true) => response.into_result::<HelloResult>().map(drop),
        (Some(Method::Register), true) => response.into_result::<RegisterResult>().map(drop),
        (Some(Method::Send), true) => response.into_result::<SendResult>().map(drop),
        (Some(Method::Ask), true) => response.into_result::<AskResult>().map(drop),
        (Some(Method::Reply), true) => response.into_result::<ReplyResult>().map(drop),
        (Some(Method::Inbox), true) => response.into_result::<InboxResult>().map(drop),
        (Some(Method::GroupHistory), true) => {
            response.into_result::<GroupHistoryResult>().map(drop)
        }
        (Some(other), true) => panic!("add a result check for `{}`", other.name()),
        // The answer to the hub's own ping: the request came from the hub.
        (None, true) => Ok(()),
    };
    assert_eq!(decoded, Ok(()), "{frame}");
}
