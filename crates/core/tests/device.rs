//! What the SDK keeps on the device (SPEC.md "On the device"): a record re-derived
//! from the SPEC's text with the primitives directly, its bytes pinned, the
//! section's constants checked against the code, and D.4's tab messages read from
//! the SPEC's text.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer_core::account::RootSecret;
use coffer_core::device::{self, DeviceKeys, RecordKind};
use coffer_core::offline;
use coffer_core::proto::ServerFrame;
use coffer_core::resume::{self, fingerprint};
use coffer_core::tabs::{self, TabMessage};
use hkdf::Hkdf;
use sha2::Sha256;

fn lp(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_device_record_is_what_d1_says() {
    let root = [0x42u8; 32];
    let keys = DeviceKeys::derive(&RootSecret::from_bytes(root));
    let nonce = [9u8; 12];
    let sealed = keys.seal(RecordKind::UploadPlan, "plan-id", b"{\"v\":1}", nonce);

    // D.1 with literal labels.
    let mut seal_key = [0u8; 32];
    Hkdf::<Sha256>::new(None, &root).expand(b"coffer/v1/device-seal", &mut seal_key).unwrap();
    let mut owner = [0u8; 32];
    Hkdf::<Sha256>::new(None, &root).expand(b"coffer/v1/device-owner", &mut owner).unwrap();
    let mut aad = b"coffer/v1/device-record".to_vec();
    aad.extend(lp(b"upload-plan"));
    aad.extend(lp(b"plan-id"));
    let body = Aes256Gcm::new(&seal_key.into())
        .encrypt(&Nonce::from(nonce), Payload { msg: b"{\"v\":1}", aad: &aad })
        .unwrap();
    let mut expected = vec![0x01];
    expected.extend_from_slice(&nonce);
    expected.extend(body);
    assert_eq!(sealed, expected);
    assert_eq!(keys.owner(), hex(&owner[..16]));

    // Pinned: a change to the format is a visible diff here.
    assert_eq!(hex(&sealed), "010909090909090909090909096ef81643705b4e562b4e694d3b2c38de0fc427b7ebc1bf");

    // D.2's fingerprint with the literal context.
    let digest = blake3::derive_key("coffer/v1 upload first-chunk fingerprint", b"first chunk");
    assert_eq!(fingerprint(b"first chunk"), coffer_core::b64::encode(digest));
}

#[test]
fn the_constants_of_d3_match_the_code() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SPEC.md")).unwrap();
    let section = &spec[spec.find("\n# On the device\n").expect("SPEC.md has an `# On the device` part")..];
    let label = |b: &[u8]| format!("`\"{}\"`", std::str::from_utf8(b).unwrap());
    let constants: Vec<(&str, String)> = vec![
        ("LABEL_DEVICE_SEAL", label(device::LABEL_DEVICE_SEAL)),
        ("LABEL_DEVICE_OWNER", label(device::LABEL_DEVICE_OWNER)),
        ("LABEL_DEVICE_AAD", label(device::LABEL_DEVICE_AAD)),
        ("DEVICE_RECORD_VERSION", format!("`0x{:02x}`", device::DEVICE_RECORD_VERSION)),
        ("OWNER_TAG_LEN", device::OWNER_TAG_LEN.to_string()),
        ("PLAN_VERSION", resume::PLAN_VERSION.to_string()),
        ("MAX_CONTEXT_BYTES", resume::MAX_CONTEXT_BYTES.to_string()),
        ("MAX_PLAN_LIFETIME_MS", resume::MAX_PLAN_LIFETIME_MS.to_string()),
        ("FINGERPRINT_CONTEXT", format!("`\"{}\"`", resume::FINGERPRINT_CONTEXT)),
        ("TABS_CHANNEL_PREFIX", format!("`\"{}\"`", tabs::TABS_CHANNEL_PREFIX)),
        ("FEED_LOCK_PREFIX", format!("`\"{}\"`", tabs::FEED_LOCK_PREFIX)),
        ("UPLOAD_LOCK_PREFIX", format!("`\"{}\"`", tabs::UPLOAD_LOCK_PREFIX)),
        ("REWIND_GATHER_MS", tabs::REWIND_GATHER_MS.to_string()),
        ("HELLO_WAIT_MS", tabs::HELLO_WAIT_MS.to_string()),
        ("SESSION_TAG_CONTEXT", format!("`\"{}\"`", tabs::SESSION_TAG_CONTEXT)),
        ("LABEL_DEVICE_NAMES", label(device::LABEL_DEVICE_NAMES)),
        ("NAME_TAG_LEN", device::NAME_TAG_LEN.to_string()),
        ("QUEUE_LOCK_PREFIX", format!("`\"{}\"`", offline::QUEUE_LOCK_PREFIX)),
    ];
    for (name, value) in constants {
        let start = format!("| `{name}` |");
        let row =
            section.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("D.3 has no row for `{name}`"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], value, "SPEC.md D.3 gives `{name}` another value than the code");
    }
}

#[test]
fn the_tab_messages_of_d4_are_the_codes() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SPEC.md")).unwrap();
    let section = &spec[spec.find("\n## D.4 Tabs").expect("SPEC.md has D.4")..];
    let block = section.split("```json\n").nth(1).and_then(|b| b.split("```").next()).expect("D.4 shows messages");
    let messages: Vec<TabMessage> = block
        .lines()
        .map(|line| {
            let message = TabMessage::from_text(line).unwrap_or_else(|| panic!("D.4's {line} is a message"));
            assert_eq!(message.to_text(), line, "a message is written as D.4 shows it");
            message
        })
        .collect();
    let TabMessage::Frame { text } = &messages[0] else { panic!("D.4 shows a frame first") };
    let frame: ServerFrame = serde_json::from_str(text).expect("a frame carries a feed frame (§7.3)");
    assert!(matches!(frame, ServerFrame::Change(ref c) if c.seq == 7));
    assert_eq!(
        messages[1..],
        [
            TabMessage::Hello { since: 6, id: 3_141_592_653 },
            TabMessage::CaughtUp { id: 3_141_592_653 },
            TabMessage::Leader,
            TabMessage::SignedOut { session: tabs::session_tag("example-token") },
        ],
        "D.4 shows every kind of message"
    );
    // Another version's message is ignored, not misread.
    for unknown in [r#"{"type":"hello","since":1}"#, r#"{"type":"promote","who":1}"#, "not json", r#"{"since":3}"#] {
        assert_eq!(TabMessage::from_text(unknown), None, "{unknown}");
    }
    let digest = blake3::derive_key("coffer/v1 tab session tag", b"example-token");
    assert_eq!(tabs::session_tag("example-token"), hex(&digest[..16]), "D.4's session tag, from its text");
    assert_eq!(tabs::channel_name("ab12"), "coffer/v1/tabs/ab12");
    assert_eq!(tabs::feed_lock("ab12"), "coffer/v1/feed/ab12");
    assert_eq!(tabs::upload_lock("u1"), "coffer/v1/upload/u1");
}

#[test]
fn name_tags_are_what_d5_says() {
    let root = [0x42u8; 32];
    let keys = DeviceKeys::derive(&RootSecret::from_bytes(root));
    let mut names = [0u8; 32];
    Hkdf::<Sha256>::new(None, &root).expand(b"coffer/v1/device-names", &mut names).unwrap();
    let tag = |parts: &[&[u8]]| {
        let input: Vec<u8> = parts.iter().flat_map(|part| lp(part)).collect();
        hex(&blake3::keyed_hash(&names, &input).as_bytes()[..16])
    };
    assert_eq!(keys.collection_tag("todos"), tag(&[b"collection", b"todos"]));
    assert_eq!(keys.key_tag("todos", "t1"), tag(&[b"key", b"todos", b"t1"]));
    // Pinned: a change to the format is a visible diff here.
    assert_eq!(keys.key_tag("todos", "t1"), "d6a4be3f9dcb3a3b58b164ccc45bfca5");
    assert_eq!(offline::queue_lock("ab12"), "coffer/v1/kv-queue/ab12");
}
