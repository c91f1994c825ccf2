use super::*;
use proptest::prelude::*;
use prost::Message;
use serde_json::json;

#[derive(Clone, PartialEq, prost::Message)]
struct Item {
    #[prost(uint32, tag = "1")]
    id: u32,
    #[prost(string, tag = "2")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint64, tag = "2")]
    count: u64,
    #[prost(message, optional, tag = "3")]
    item: Option<Item>,
    #[prost(message, repeated, tag = "4")]
    items: Vec<Item>,
    #[prost(fixed32, tag = "5")]
    small: u32,
    #[prost(fixed64, tag = "6")]
    large: u64,
    #[prost(bytes = "vec", tag = "7")]
    blob: Vec<u8>,
    #[prost(sint32, tag = "8")]
    signed: i32,
}

fn item(id: u32, name: &str) -> Item {
    Item {
        id,
        name: name.into(),
    }
}

#[test]
fn a_prost_message_reads_as_an_object_keyed_by_field_number() {
    let reply = Reply {
        text: "hello".into(),
        count: 300,
        item: Some(item(7, "seven")),
        items: vec![item(1, "one"), item(2, "two")],
        small: 9,
        large: u64::MAX,
        blob: vec![0xff, 0x00, 0xfe],
        signed: -1,
    };
    let decoded = decode_message(&reply.encode_to_vec()).expect("a valid message");
    assert_eq!(
        decoded,
        json!({
            "1": "hello",
            "2": 300,
            "3": {"1": 7, "2": "seven"},
            "4": [{"1": 1, "2": "one"}, {"1": 2, "2": "two"}],
            "5": 9,
            "6": u64::MAX,
            "7": "/wD+",
            "8": 1,
        })
    );
}

#[test]
fn one_element_of_a_repeated_field_is_a_plain_value_and_defaults_are_absent() {
    let reply = Reply {
        items: vec![item(1, "")],
        ..Reply::default()
    };
    let decoded = decode_message(&reply.encode_to_vec()).expect("a valid message");
    assert_eq!(decoded, json!({"4": {"1": 1}}));
    assert_eq!(decode_message(&[]).expect("empty is a message"), json!({}));
}

#[test]
fn printable_text_that_also_parses_as_a_message_stays_text() {
    // " A" also parses as a message (field 4, varint 65); printable, so it is read as text.
    let text = Reply {
        text: " A".into(),
        ..Reply::default()
    };
    assert_eq!(
        decode_message(&text.encode_to_vec()).unwrap(),
        json!({"1": " A"})
    );
    let nested = Reply {
        item: Some(item(0, "J")),
        ..Reply::default()
    };
    // The nested message's bytes are "\x12\x01J": not printable, so read as a message.
    assert_eq!(
        decode_message(&nested.encode_to_vec()).unwrap(),
        json!({"3": {"2": "J"}})
    );
}

#[test]
fn malformed_messages_are_errors() {
    assert_eq!(
        decode_message(&[0x0a, 0x05, b'a']),
        Err(DecodeError::Truncated)
    );
    assert_eq!(decode_message(&[0x08]), Err(DecodeError::Truncated));
    assert_eq!(decode_message(&[0x80; 11]), Err(DecodeError::VarintTooLong));
    assert_eq!(decode_message(&[0x00, 0x01]), Err(DecodeError::FieldZero));
    assert_eq!(decode_message(&[0x0b]), Err(DecodeError::WireType(3)));
    assert_eq!(decode_message(&[0x0d, 1, 2]), Err(DecodeError::Truncated));
}

#[test]
fn nesting_past_the_limit_stays_bytes() {
    let mut bytes = vec![0x08, 0x01];
    for _ in 0..(MAX_NESTING + 4) {
        let mut outer = vec![0x0a, u8::try_from(bytes.len()).unwrap_or(0)];
        if bytes.len() >= 0x80 {
            // Two-byte varint length.
            outer = vec![
                0x0a,
                (bytes.len() as u8 & 0x7f) | 0x80,
                (bytes.len() >> 7) as u8,
            ];
        }
        outer.extend_from_slice(&bytes);
        bytes = outer;
    }
    let decoded = decode_message(&bytes).expect("deep but valid");
    let mut depth = 0;
    let mut value = &decoded;
    while let Some(inner) = value.get("1") {
        depth += 1;
        value = inner;
    }
    assert_eq!(depth, MAX_NESTING);
    assert!(
        value.is_string(),
        "the innermost kept value is bytes: {value}"
    );
}

#[test]
fn too_many_fields_is_an_error() {
    let bytes = [0x08, 0x01].repeat(MAX_FIELDS + 1);
    assert_eq!(decode_message(&bytes), Err(DecodeError::TooManyFields));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_message(&bytes);
    }

    #[test]
    fn encoded_messages_always_decode(text in ".{0,20}", count in any::<u64>(), ids in proptest::collection::vec(any::<u32>(), 0..5)) {
        let reply = Reply {
            text: text.clone(),
            count,
            items: ids.iter().map(|&id| item(id, "x")).collect(),
            ..Reply::default()
        };
        let decoded = decode_message(&reply.encode_to_vec());
        prop_assert!(decoded.is_ok(), "{decoded:?}");
        let decoded = decoded.unwrap();
        if count != 0 {
            prop_assert_eq!(&decoded["2"], &json!(count));
        }
    }
}
