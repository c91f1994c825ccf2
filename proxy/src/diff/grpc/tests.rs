use super::*;
use crate::diff::{diff_bodies, PathPattern};
use http::HeaderValue;
use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct Echo {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

const GRPC: Option<&str> = Some("application/grpc");

fn framed(messages: &[Echo], compressed: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for message in messages {
        let bytes = message.encode_to_vec();
        body.push(u8::from(compressed));
        body.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&bytes);
    }
    body
}

fn echo(text: &str, count: u32) -> Echo {
    Echo {
        text: text.into(),
        count,
    }
}

#[test]
fn a_changed_field_is_found_at_its_field_number_path() {
    let primary = framed(&[echo("hi", 1)], false);
    let shadow = framed(&[echo("hi", 2)], false);
    let found = diff_bodies(&primary, GRPC, &shadow, GRPC, &BodyRules::default());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "$.2");
    assert_eq!(found[0].kind, DiffKind::ValueChanged);
    assert_eq!(found[0].detail, "1 → 2");
}

#[test]
fn ignore_rules_apply_to_field_number_paths() {
    let rules = BodyRules {
        ignore: vec!["$.2".parse::<PathPattern>().unwrap()],
        ..BodyRules::default()
    };
    let primary = framed(&[echo("hi", 1)], false);
    let shadow = framed(&[echo("hi", 2)], false);
    assert!(diff_bodies(
        &primary,
        GRPC,
        &shadow,
        Some("application/grpc+proto"),
        &rules
    )
    .is_empty());
}

#[test]
fn several_messages_compare_as_an_array() {
    let primary = framed(&[echo("a", 1), echo("b", 2)], false);
    let shadow = framed(&[echo("a", 1), echo("c", 2)], false);
    let found = diff_bodies(&primary, GRPC, &shadow, GRPC, &BodyRules::default());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "$[*].1");
    assert!(holds_several_messages(&primary));
    assert!(!holds_several_messages(&framed(&[echo("a", 1)], false)));
    assert!(!holds_several_messages(b""));
}

#[test]
fn compressed_messages_compare_as_binary_and_say_so() {
    let primary = framed(&[echo("a", 1)], true);
    let shadow = framed(&[echo("a", 2)], true);
    let found = diff_bodies(&primary, GRPC, &shadow, GRPC, &BodyRules::default());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, DiffKind::Binary);
    assert!(
        found[0].detail.starts_with("compressed gRPC messages"),
        "{}",
        found[0].detail
    );
}

#[test]
fn broken_framing_is_a_type_change_naming_the_side() {
    let primary = framed(&[echo("a", 1)], false);
    let mut shadow = primary.clone();
    shadow.truncate(shadow.len() - 1);
    let found = diff_bodies(&primary, GRPC, &shadow, GRPC, &BodyRules::default());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, DiffKind::TypeChanged);
    assert!(
        found[0].detail.starts_with("shadow body is not a gRPC"),
        "{}",
        found[0].detail
    );
    // An empty body (a trailers-only answer) holds no message.
    let found = diff_bodies(&primary, GRPC, b"", GRPC, &BodyRules::default());
    assert_eq!(found[0].path, "$");
}

#[test]
fn grpc_status_and_message_come_from_trailers_or_headers() {
    let mut ok_trailers = HeaderMap::new();
    ok_trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut failed_headers = HeaderMap::new();
    failed_headers.insert("grpc-status", HeaderValue::from_static("13"));
    failed_headers.insert("grpc-message", HeaderValue::from_static("boom"));
    let empty = HeaderMap::new();
    let primary = GrpcAnswer {
        headers: &empty,
        trailers: &ok_trailers,
    };
    let shadow = GrpcAnswer {
        headers: &failed_headers,
        trailers: &empty,
    };
    let found = diff_grpc_outcome(&primary, &shadow);
    assert_eq!(
        found,
        vec![
            Finding::new(GRPC_STATUS_PATH, DiffKind::Status, "0 → 13"),
            Finding::new(GRPC_MESSAGE_PATH, DiffKind::Header, "(absent) → boom"),
        ]
    );
    assert!(diff_grpc_outcome(&primary, &primary).is_empty());
}

#[test]
fn content_types_are_told_apart() {
    assert!(is_grpc_content_type("application/grpc"));
    assert!(is_grpc_content_type("Application/GRPC+proto; charset=x"));
    assert!(!is_grpc_content_type("application/grpc+json"));
    assert!(!is_grpc_content_type("application/json"));
}
