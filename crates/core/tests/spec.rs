//! Keeps SPEC.md and the code from drifting apart: its constants table, its error-code
//! table and its JSON examples are checked against the code.

use coffer_core::Coded;
use coffer_core::account::{self, KdfParams};
use coffer_core::proto::{ClientFrame, KvValue, ServerFrame};
use coffer_core::{ErrorCode, validate};
use coffer_core::{identity, kv, recovery};

/// SPEC.md up to the `# Files and spaces` part, which has its own tests.
fn spec() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SPEC.md")).unwrap();
    text.split("\n# Files and spaces").next().unwrap().to_owned()
}

/// The table row of SPEC.md that starts with `` | `name` | ``.
fn row<'a>(spec: &'a str, name: &str) -> &'a str {
    let start = format!("| `{name}` |");
    spec.lines()
        .find(|line| line.starts_with(&start))
        .unwrap_or_else(|| panic!("SPEC.md has no table row for `{name}`"))
}

fn label(bytes: &[u8]) -> String {
    format!("`\"{}\"`", std::str::from_utf8(bytes).unwrap())
}

#[test]
fn constants_table_matches_the_code() {
    let spec = spec();
    let constants: Vec<(&str, String)> = vec![
        ("NONCE_LEN", "12".into()),
        ("TAG_LEN", "16".into()),
        ("SALT_LEN", account::SALT_LEN.to_string()),
        ("CHALLENGE_LEN", account::CHALLENGE_LEN.to_string()),
        ("KDF_ARGON2ID", format!("`\"{}\"`", account::KDF_ARGON2ID)),
        ("KdfParams::MIN_MEM_KIB", KdfParams::MIN_MEM_KIB.to_string()),
        ("KdfParams::MAX_MEM_KIB", KdfParams::MAX_MEM_KIB.to_string()),
        ("LABEL_LOGIN_KEY", label(account::LABEL_LOGIN_KEY)),
        ("LABEL_WRAP_KEY", label(account::LABEL_WRAP_KEY)),
        ("LABEL_LOGIN_SIGNATURE", label(account::LABEL_LOGIN_SIGNATURE)),
        ("LABEL_WRAPPED_ROOT", label(account::LABEL_WRAPPED_ROOT)),
        ("LABEL_KEY_PUBLICATION", label(account::LABEL_KEY_PUBLICATION)),
        ("WRAPPED_ROOT_VERSION", format!("`0x{:02x}`", account::WRAPPED_ROOT_VERSION)),
        ("WRAPPED_ROOT_LEN", account::WRAPPED_ROOT_LEN.to_string()),
        ("LABEL_KV_SEAL", label(kv::LABEL_KV_SEAL)),
        ("LABEL_KV_MAC", label(kv::LABEL_KV_MAC)),
        ("LABEL_KV_AAD", label(kv::LABEL_KV_AAD)),
        ("LABEL_KV_PLAIN", label(kv::LABEL_KV_PLAIN)),
        ("SEALED_VERSION", format!("`0x{:02x}`", kv::SEALED_VERSION)),
        ("MAC_LEN", kv::MAC_LEN.to_string()),
        ("MAX_NAME_BYTES", validate::MAX_NAME_BYTES.to_string()),
        ("MAX_VALUE_BYTES", validate::MAX_VALUE_BYTES.to_string()),
        ("MAX_USERNAME_BYTES", validate::MAX_USERNAME_BYTES.to_string()),
        ("RESERVED_PREFIX", format!("`'{}'`", validate::RESERVED_PREFIX)),
        ("LABEL_USER_KEY", label(identity::LABEL_USER_KEY)),
        ("LABEL_SEALED_TO", label(identity::LABEL_SEALED_TO)),
        ("SEALED_TO_VERSION", format!("`0x{:02x}`", identity::SEALED_TO_VERSION)),
        ("PUBLIC_KEY_LEN", identity::PUBLIC_KEY_LEN.to_string()),
        ("RECOVERY_SECRET_LEN", recovery::RECOVERY_SECRET_LEN.to_string()),
        ("RECOVERY_CODE_CHARS", recovery::RECOVERY_CODE_CHARS.to_string()),
        ("LABEL_RECOVERY_KEY", label(recovery::LABEL_RECOVERY_KEY)),
        ("LABEL_RECOVERY_CHECK", label(recovery::LABEL_RECOVERY_CHECK)),
        ("LABEL_ROOT_PROOF", label(identity::LABEL_ROOT_PROOF)),
        ("LABEL_SERVER_KEY", label(identity::LABEL_SERVER_KEY)),
    ];
    for (name, value) in constants {
        let cells: Vec<&str> = row(&spec, name).split('|').map(str::trim).collect();
        assert_eq!(cells[2], value, "SPEC.md §11 gives `{name}` another value than the code");
    }
    // The two the crate keeps private, checked through what they size.
    assert_eq!(account::WRAPPED_ROOT_LEN, 1 + 12 + 32 + 16);
    // The defaults quoted in §3.1.
    let default = serde_json::to_string(&KdfParams::default()).unwrap();
    assert!(spec.contains(&format!("```json\n{default}\n```")), "§3.1 does not show {default}");
}

#[test]
fn error_table_matches_the_code() {
    let spec = spec();
    for code in ErrorCode::ALL {
        let cells: Vec<&str> = row(&spec, code.as_str()).split('|').map(str::trim).collect();
        assert_eq!(cells[2], code.http_status().to_string(), "SPEC.md §8: status of {code}");
    }
}

/// Every one-line JSON example in a ```json block of SPEC.md parses as the type it
/// shows and serializes back to exactly the same text.
#[test]
fn json_examples_are_exact() {
    let spec = spec();
    let mut checked = 0;
    let mut in_block = false;
    for line in spec.lines() {
        match line {
            "```json" => in_block = true,
            "```" => in_block = false,
            _ if in_block => {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                let again = if value.get("alg").is_some() {
                    serde_json::to_string(&serde_json::from_str::<KdfParams>(line).unwrap())
                } else if value.get("kind").is_some() {
                    serde_json::to_string(&serde_json::from_str::<KvValue>(line).unwrap())
                } else if value["type"] == "auth" {
                    serde_json::to_string(&serde_json::from_str::<ClientFrame>(line).unwrap())
                } else {
                    serde_json::to_string(&serde_json::from_str::<ServerFrame>(line).unwrap())
                };
                let again = again.unwrap();
                // `<b64 …>` placeholders are not b64, but survive as strings.
                assert_eq!(again, line, "SPEC.md example is not what the code writes");
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 10, "only {checked} JSON examples found");
}

/// Behaviours SPEC.md states in prose.
#[test]
fn prose_claims() {
    // §7.3: `since` may be absent, meaning the head.
    let frame: ClientFrame = serde_json::from_str(r#"{"type":"auth","token":"t"}"#).unwrap();
    assert_eq!(frame, ClientFrame::Auth { token: "t".into(), since: None });
    // §6: any JSON value, surrounding whitespace allowed, any nesting depth (the
    // check skips over the value without recursing), and nothing else.
    for ok in ["0", "\"\"", "null", " [1] ", "{\"a\":{}}"] {
        validate::value_json(ok).unwrap();
    }
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    validate::value_json(&nested(100_000)).unwrap();
    for bad in ["", " ", "1 2", "[1,]", "{'a':1}", "NaN", "\"\\x\""] {
        validate::value_json(bad).unwrap_err();
    }
    // §6: the limit is on the JSON text, inclusive.
    let exact = format!("\"{}\"", "x".repeat(validate::MAX_VALUE_BYTES - 2));
    validate::value_json(&exact).unwrap();
    assert_eq!(validate::value_json(&format!("{exact} ")).unwrap_err().code(), ErrorCode::TooLarge);
    // §6: names are opaque: paths, spaces, emoji.
    for name in ["../é/..", "a b", "🍵", "x".repeat(validate::MAX_NAME_BYTES).as_str()] {
        validate::collection(name).unwrap();
        validate::id(name).unwrap();
    }
    // §3.1: the default parameters are accepted, and are OWASP's minimum.
    KdfParams::default().check().unwrap();
}

/// §10's table of vector kinds counts the files that are really there.
#[test]
fn vector_counts_match() {
    let spec = spec();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    let mut counts = std::collections::BTreeMap::<(String, bool), usize>::new();
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let kind = text.lines().find_map(|l| l.strip_prefix("kind: ")).unwrap().to_owned();
        let fail = path.file_name().unwrap().to_str().unwrap().starts_with("fail_");
        *counts.entry((kind, fail)).or_default() += 1;
        total.0 += 1;
        total.1 += usize::from(fail);
    }
    for ((kind, fail), n) in &counts {
        let cells: Vec<String> = row(&spec, kind).split('|').map(|c| c.trim().to_owned()).collect();
        let said = cells[4].clone();
        let want = format!("{n} {}", if *fail { "fail" } else { "ok" });
        assert!(
            said.split(", ").any(|part| part == want),
            "SPEC.md §10 says `{said}` for {kind}; the folder has {want}"
        );
    }
    let line = format!("{} files in all, {} of them `fail_*`.", total.0, total.1);
    assert!(spec.contains(&line), "SPEC.md §10 should say: {line}");
}
