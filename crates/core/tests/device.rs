//! What the SDK keeps on the device (SPEC.md "On the device"): a record re-derived
//! from the SPEC's text with the primitives directly, its bytes pinned, and the
//! section's constants checked against the code.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer_core::account::RootSecret;
use coffer_core::device::{self, DeviceKeys, RecordKind};
use coffer_core::resume::{self, fingerprint};
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
    ];
    for (name, value) in constants {
        let start = format!("| `{name}` |");
        let row =
            section.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("D.3 has no row for `{name}`"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], value, "SPEC.md D.3 gives `{name}` another value than the code");
    }
}
