//! client.storage and client.space in headless Chromium against a live accelerator.
#![cfg(target_arch = "wasm32")]

mod common;

use coffer::Client;
use coffer::storage::cipher::{self, Engine};
use coffer_core::chunk::{ChunkKey, ChunkPos};
use common::*;
use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap()
}

/// Deterministic test bytes (not all zero, so a shifted chunk would show).
fn pattern(len: usize, seed: u32) -> Uint8Array {
    let bytes: Vec<u8> =
        (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8).collect();
    Uint8Array::from(&bytes[..])
}

fn same(a: &JsValue, b: &Uint8Array) -> bool {
    let a: &Uint8Array = a.unchecked_ref();
    a.length() == b.length() && a.to_vec() == b.to_vec()
}

async fn space_of(client: &Client, name: &str) -> String {
    let space = wait(client.space().create(obj(&[("name", name.into())]))).await.unwrap();
    assert_eq!(get(&space, "name"), name);
    assert_eq!(get(&space, "role"), "owner");
    get(&space, "id").as_string().unwrap()
}

async fn write(client: &Client, space_id: &str, data: &JsValue, extra: &[(&str, JsValue)]) -> (JsValue, String) {
    let mut pairs = vec![("spaceId", space_id.into()), ("data", data.clone())];
    pairs.extend(extra.iter().cloned());
    let out = wait(client.storage().write_file(obj(&pairs))).await.unwrap();
    (get(&out, "stat"), get(&out, "manifest").as_string().unwrap())
}

#[wasm_bindgen_test]
async fn seed_storage_examples_round_trip() {
    let client = sign_up(&unique("files")).await;
    let space_id = space_of(&client, "Docs").await;
    let file = web_sys::File::new_with_u8_array_sequence_and_options(&Array::of1(&pattern(10_000, 1)), "notes.txt", &{
        let bag = web_sys::FilePropertyBag::new();
        bag.set_type("text/plain");
        bag
    })
    .unwrap();
    let metadata = obj(&[("name", file.name().into()), ("type", file.type_().into())]);
    let (stat, manifest) = write(&client, &space_id, &file.clone().into(), &[("metadata", metadata)]).await;
    assert!(manifest.starts_with("coffer1:") && manifest.len() < 1024);
    assert_eq!(get(&stat, "size"), 10_000);
    assert_eq!(json(&get(&stat, "metadata")), r#"{"name":"notes.txt","type":"text/plain"}"#);
    let id = get(&stat, "id");

    let read = wait(client.storage().read_file(space_id.clone().into(), id.clone(), None)).await.unwrap();
    assert!(same(&get(&read, "data"), &pattern(10_000, 1)));
    let shared = wait(client.storage().read_by_manifest(manifest.clone().into(), None)).await.unwrap();
    assert!(same(&get(&shared, "data"), &pattern(10_000, 1)));
    assert_eq!(json(&get(&get(&shared, "stat"), "metadata")), r#"{"name":"notes.txt","type":"text/plain"}"#);

    let mine: Array = wait(client.storage().list_files(None)).await.unwrap().unchecked_into();
    assert_eq!(mine.length(), 1);
    assert_eq!(get(&mine.get(0), "id"), id);
    assert_eq!(get(&mine.get(0), "manifest"), manifest.as_str());
    let in_space: Array = wait(client.storage().list_files(Some(obj(&[("spaceId", space_id.as_str().into())]))))
        .await
        .unwrap()
        .unchecked_into();
    assert_eq!(in_space.length(), 1);
    assert_eq!(get(&in_space.get(0), "size"), 10_000);

    assert_eq!(wait(client.storage().delete_file(space_id.clone().into(), id.clone())).await.unwrap(), JsValue::TRUE);
    assert_eq!(wait(client.storage().delete_file(space_id.clone().into(), id.clone())).await.unwrap(), JsValue::FALSE);
    assert_eq!(code_of(client.storage().read_by_manifest(manifest.into(), None)).await, "NotFound");
    assert_eq!(code_of(client.storage().read_file(space_id.clone().into(), id, None)).await, "NotFound");
    let mine: Array = wait(client.storage().list_files(None)).await.unwrap().unchecked_into();
    assert_eq!(mine.length(), 0, "a deleted file leaves the shared-files list");
}

#[wasm_bindgen_test]
async fn sizes_around_chunk_boundaries_round_trip_from_every_input_kind() {
    let client = sign_up(&unique("sizes")).await;
    let space_id = space_of(&client, "Sizes").await;
    let chunk = 64 * 1024;
    for (i, size) in [0usize, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 17].into_iter().enumerate() {
        let bytes = pattern(size, i as u32);
        let blob = web_sys::Blob::new_with_u8_array_sequence(&Array::of1(&bytes)).unwrap();
        for data in [JsValue::from(bytes.clone()), blob.into()] {
            let (stat, manifest) = write(&client, &space_id, &data, &[("chunkSize", (chunk as u32).into())]).await;
            assert_eq!(get(&stat, "size"), size as u32);
            let back = wait(client.storage().read_by_manifest(manifest.into(), None)).await.unwrap();
            assert!(same(&get(&back, "data"), &bytes), "size {size}");
        }
    }
}

#[wasm_bindgen_test]
async fn a_fifty_mebibyte_file_round_trips_as_bytes_blob_and_stream() {
    let client = sign_up(&unique("big")).await;
    let space_id = space_of(&client, "Big").await;
    let size = 50 * 1024 * 1024;
    let bytes = pattern(size, 7);
    let blob = web_sys::Blob::new_with_u8_array_sequence(&Array::of1(&bytes)).unwrap();
    let progress = Recorder::new();
    let (stat, manifest) = write(&client, &space_id, &blob.into(), &[("onProgress", progress.function())]).await;
    assert_eq!(get(&stat, "size"), size as u32);
    assert!(progress.len() >= 13, "progress reported per chunk: {}", progress.len());

    let back = wait(client.storage().read_by_manifest(manifest.clone().into(), None)).await.unwrap();
    assert!(same(&get(&back, "data"), &bytes));

    let as_blob = wait(client.storage().read_by_manifest(manifest.clone().into(), Some(obj(&[("as", "blob".into())]))))
        .await
        .unwrap();
    let blob: web_sys::Blob = get(&as_blob, "data").unchecked_into();
    assert_eq!(blob.size() as usize, size);
    let buffer = wait(blob.array_buffer()).await.unwrap();
    assert!(same(&Uint8Array::new(&buffer).into(), &bytes));

    let as_stream =
        wait(client.storage().read_by_manifest(manifest.into(), Some(obj(&[("as", "stream".into())])))).await.unwrap();
    let stream: web_sys::ReadableStream = get(&as_stream, "data").unchecked_into();
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut offset = 0u32;
    loop {
        let step = wait(reader.read()).await.unwrap();
        if get(&step, "done").as_bool().unwrap() {
            break;
        }
        let part: Uint8Array = get(&step, "value").unchecked_into();
        assert!(part.to_vec() == bytes.subarray(offset, offset + part.length()).to_vec(), "stream part at {offset}");
        offset += part.length();
    }
    assert_eq!(offset as usize, size);
}

#[wasm_bindgen_test]
async fn members_read_non_members_are_refused_and_manifests_open_for_anyone() {
    let owner = sign_up(&unique("owner")).await;
    let friend = sign_up(&unique("friend")).await;
    let stranger = sign_up(&unique("stranger")).await;
    let space_id = space_of(&owner, "Shared").await;
    let bytes = pattern(5000, 3);
    let (stat, manifest) = write(&owner, &space_id, &bytes.clone().into(), &[]).await;
    let id = get(&stat, "id");

    let token =
        wait(owner.space().invite(space_id.clone().into(), Some(obj(&[("role", "writer".into())])))).await.unwrap();
    assert!(token.as_string().unwrap().starts_with("coffer-invite1:"));
    let joined = wait(friend.space().join(token.clone())).await.unwrap();
    assert_eq!(get(&joined, "name"), "Shared");
    assert_eq!(get(&joined, "role"), "writer");
    let read = wait(friend.storage().read_file(space_id.clone().into(), id.clone(), None)).await.unwrap();
    assert!(same(&get(&read, "data"), &bytes));
    let members: Array = wait(owner.space().members(space_id.clone().into())).await.unwrap().unchecked_into();
    assert_eq!(members.length(), 2);

    // The invite was for one use.
    assert_eq!(code_of(stranger.space().join(token)).await, "Forbidden");
    assert_eq!(code_of(stranger.storage().read_file(space_id.clone().into(), id.clone(), None)).await, "Forbidden");
    assert_eq!(code_of(stranger.space().usage(space_id.clone().into())).await, "Forbidden");
    let by_manifest = wait(stranger.storage().read_by_manifest(manifest.clone().into(), None)).await.unwrap();
    assert!(same(&get(&by_manifest, "data"), &bytes));

    let anonymous = Client::anonymous(obj(&[("url", URL.into())]).unchecked_into()).await.unwrap();
    let anon = wait(anonymous.storage().read_by_manifest(manifest.into(), None)).await.unwrap();
    assert!(same(&get(&anon, "data"), &bytes));

    let usage = wait(owner.space().usage(space_id.clone().into())).await.unwrap();
    assert!(get(&usage, "usedBytes").as_f64().unwrap() >= 5000.0);
    assert!(get(&usage, "quotaBytes").as_f64().unwrap() > 0.0);

    wait(friend.space().leave(space_id.clone().into())).await.unwrap();
    assert_eq!(code_of(friend.storage().read_file(space_id.into(), id, None)).await, "Forbidden");
}

#[wasm_bindgen_test]
async fn readers_cannot_write_or_delete() {
    let owner = sign_up(&unique("owner")).await;
    let reader = sign_up(&unique("reader")).await;
    let space_id = space_of(&owner, "Read-only").await;
    let (stat, _) = write(&owner, &space_id, &pattern(10, 1).into(), &[]).await;
    let token = wait(owner.space().invite(space_id.clone().into(), None)).await.unwrap();
    let joined = wait(reader.space().join(token)).await.unwrap();
    assert_eq!(get(&joined, "role"), "reader");
    let attempt =
        reader.storage().write_file(obj(&[("spaceId", space_id.as_str().into()), ("data", pattern(10, 2).into())]));
    assert_eq!(code_of(attempt).await, "Forbidden");
    assert_eq!(code_of(reader.storage().delete_file(space_id.into(), get(&stat, "id"))).await, "Forbidden");
}

#[wasm_bindgen_test]
async fn webcrypto_and_wasm_seal_identically_and_open_each_other() {
    for (len, index) in [(0usize, 0u64), (1, 1), (4096, 7), (1 << 20, 123_456)] {
        let key = ChunkKey::from_bytes([len as u8 ^ 0x5a; 32]);
        let pos = ChunkPos::Data(index);
        let plain = pattern(len, index as u32);
        let by_browser = cipher::seal(Engine::WebCrypto, &key, pos, &plain).await.unwrap().to_vec();
        let by_wasm = cipher::seal(Engine::Wasm, &key, pos, &plain).await.unwrap().to_vec();
        assert_eq!(by_browser, by_wasm, "same key, nonce and AAD give the same bytes ({len} bytes)");
        let opened = cipher::open(Engine::Wasm, &key, pos, &by_browser).await.unwrap();
        assert_eq!(opened.to_vec(), plain.to_vec());
        let opened = cipher::open(Engine::WebCrypto, &key, pos, &by_wasm).await.unwrap();
        assert_eq!(opened.to_vec(), plain.to_vec());
        let mut tampered = by_wasm.clone();
        tampered[0] ^= 1;
        for engine in [Engine::WebCrypto, Engine::Wasm] {
            let err = cipher::open(engine, &key, pos, &tampered).await.unwrap_err();
            assert_eq!(err.code.as_str(), "Integrity");
            let err = cipher::open(engine, &key, ChunkPos::Data(index + 1), &by_wasm).await.unwrap_err();
            assert_eq!(err.code.as_str(), "Integrity", "a chunk moved to another index does not open");
        }
    }
}

#[wasm_bindgen_test]
async fn aborting_a_write_leaves_nothing_visible() {
    let client = sign_up(&unique("abort")).await;
    let space_id = space_of(&client, "Abort").await;
    let controller = web_sys::AbortController::new().unwrap();
    let signal = controller.signal();
    // Abort as soon as the first chunk is reported done.
    let abort = Closure::<dyn FnMut(JsValue, JsValue)>::new(move |done: JsValue, _total: JsValue| {
        if done.as_f64().unwrap() > 0.0 {
            controller.abort();
        }
    });
    let attempt = client.storage().write_file(obj(&[
        ("spaceId", space_id.as_str().into()),
        ("data", pattern(1 << 20, 9).into()),
        ("chunkSize", (64 * 1024).into()),
        ("onProgress", abort.as_ref().clone()),
        ("signal", signal.into()),
    ]));
    assert_eq!(code_of(attempt).await, "Aborted");
    let listed: Array = wait(client.storage().list_files(Some(obj(&[("spaceId", space_id.as_str().into())]))))
        .await
        .unwrap()
        .unchecked_into();
    assert_eq!(listed.length(), 0);
    let mine: Array = wait(client.storage().list_files(None)).await.unwrap().unchecked_into();
    assert_eq!(mine.length(), 0);
    let usage = wait(client.space().usage(space_id.into())).await.unwrap();
    assert_eq!(get(&usage, "usedBytes"), 0);
}

/// `fetch` rejects with the signal's reason, which an app may make anything (a string
/// here): the SDK still answers `Aborted`, and keeps working (a request path that
/// assumed an `Error` would trap the wasm instead).
#[wasm_bindgen_test]
async fn an_abort_whose_reason_is_not_an_error_still_rejects_with_aborted() {
    let http = coffer::http::Http::new(URL).unwrap();
    let controller = web_sys::AbortController::new().unwrap();
    controller.abort_with_reason(&"the user went elsewhere".into());
    let put = http.put_bytes("/v1/shards/upload", &pattern(16, 1), Some(&controller.signal())).await;
    assert_eq!(put.unwrap_err().code.as_str(), "Aborted");
    let client = sign_up(&unique("reason")).await;
    let space_id = space_of(&client, "Reason").await;
    let controller = web_sys::AbortController::new().unwrap();
    let signal = controller.signal();
    // Aborted while the other chunks' shards are in flight.
    let abort = Closure::<dyn FnMut(JsValue, JsValue)>::new(move |done: JsValue, _total: JsValue| {
        if done.as_f64().unwrap() > 0.0 {
            controller.abort_with_reason(&42.into());
        }
    });
    let attempt = client.storage().write_file(obj(&[
        ("spaceId", space_id.as_str().into()),
        ("data", pattern(1 << 20, 2).into()),
        ("chunkSize", (64 * 1024).into()),
        ("onProgress", abort.as_ref().clone()),
        ("signal", signal.into()),
    ]));
    assert_eq!(code_of(attempt).await, "Aborted");
    write(&client, &space_id, &pattern(1000, 3).into(), &[]).await;
}

#[wasm_bindgen_test]
async fn bad_storage_input_is_refused_with_codes() {
    let client = sign_up(&unique("badfiles")).await;
    let space_id = space_of(&client, "Bad").await;
    let storage = client.storage();
    let data: JsValue = pattern(10, 1).into();
    let attempt = |pairs: &[(&str, JsValue)]| storage.write_file(obj(pairs));
    assert_eq!(code_of(attempt(&[("data", data.clone())])).await, "InvalidInput");
    assert_eq!(code_of(attempt(&[("spaceId", "nope".into()), ("data", data.clone())])).await, "InvalidInput");
    assert_eq!(
        code_of(attempt(&[("spaceId", space_id.as_str().into()), ("data", "text".into())])).await,
        "InvalidInput"
    );
    let big_name = obj(&[("name", "n".repeat(300).into())]);
    assert_eq!(
        code_of(attempt(&[("spaceId", space_id.as_str().into()), ("data", data.clone()), ("metadata", big_name)]))
            .await,
        "TooLarge"
    );
    assert_eq!(
        code_of(attempt(&[("spaceId", space_id.as_str().into()), ("data", data.clone()), ("chunkSize", 10.into())]))
            .await,
        "InvalidInput"
    );
    assert_eq!(
        code_of(attempt(&[("spaceId", space_id.as_str().into()), ("data", data.clone()), ("parityShards", 9.into())]))
            .await,
        "InvalidInput"
    );
    // A space this account has no key for.
    assert_eq!(
        code_of(attempt(&[("spaceId", "AAAAAAAAAAAAAAAAAAAAAA".into()), ("data", data.clone())])).await,
        "Forbidden"
    );
    assert_eq!(code_of(storage.read_by_manifest("coffer1:AAAA".into(), None)).await, "InvalidInput");
    let (_, manifest) = write(&client, &space_id, &data, &[]).await;
    let mut tampered: Vec<char> = manifest.chars().collect();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    assert_eq!(code_of(storage.read_by_manifest(tampered.into(), None)).await, "Integrity");
    assert_eq!(code_of(storage.read_by_manifest("not a manifest".into(), None)).await, "InvalidInput");
    assert_eq!(code_of(storage.read_by_manifest("coffer9:AAAA".into(), None)).await, "InvalidInput");
    assert_eq!(code_of(storage.read_file(space_id.as_str().into(), "short".into(), None)).await, "InvalidInput");
    assert_eq!(
        code_of(storage.read_by_manifest("coffer1:AAAA".into(), Some(obj(&[("as", "text".into())])))).await,
        "InvalidInput"
    );
    assert_eq!(code_of(client.space().join("coffer-invite1:AAAA".into())).await, "InvalidInput");
    assert_eq!(code_of(client.space().create(obj(&[("name", "x".repeat(300).into())]))).await, "TooLarge");
    assert_eq!(
        code_of(client.space().invite(space_id.as_str().into(), Some(obj(&[("role", "owner".into())])))).await,
        "InvalidInput"
    );
}
