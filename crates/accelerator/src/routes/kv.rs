//! The kv routes. Values arrive sealed or MAC'd by the client; the accelerator
//! checks their shape and size, never their content, and stores them under the
//! session's user id. Each set, and each delete of a present key, appends to the
//! user's change log in the same transaction and wakes the user's feeds.
//!
//! Collections and ids arrive sealed (SPEC.md §4.4): opaque text of up to
//! [`MAX_STORED_NAME_BYTES`], stored and compared as it is. Keys stored before sealed
//! names carry the names an older SDK sent in the clear, and so does a key an older
//! SDK writes since, under names without a sealed name's shape
//! ([`coffer_core::names::looks_sealed`]); they are legacy until the SDK renames them
//! ([`crate::store::set_is_legacy`]):
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/kv/set` | [`KvSetRequest`] | [`KvWriteResponse`] |
//! | `POST /v1/kv/get` | [`KvKeyRequest`] | [`KvGetResponse`] |
//! | `POST /v1/kv/delete` | [`KvKeyRequest`] | [`KvDeleteResponse`] |
//! | `POST /v1/kv/list` | [`KvListRequest`] | [`KvListResponse`] |
//! | `GET /v1/kv/legacy` | — | [`KvLegacyResponse`]: the caller's first legacy keys with their values, at most [`MAX_RENAMES`] and [`MAX_LEGACY_PAGE_VALUE_BYTES`](coffer_core::proto::MAX_LEGACY_PAGE_VALUE_BYTES) of values past the first |
//! | `POST /v1/kv/rename` | [`KvRenameRequest`] | [`KvRenameResponse`]: legacy keys moved to sealed names; zeros at once for a caller with none |

use axum::extract::State;
use coffer_core::b64;
use coffer_core::kv::{MAC_LEN, SEALED_VERSION};
use coffer_core::proto::{
    KvDeleteResponse, KvGetResponse, KvKeyRequest, KvLegacyKey, KvLegacyResponse, KvListRequest, KvListResponse,
    KvRenameRequest, KvRenameResponse, KvSetRequest, KvValue, KvWriteResponse, MAX_RENAMES,
};
use coffer_core::validate::{self, MAX_STORED_NAME_BYTES, MAX_VALUE_BYTES};

use crate::error::{ApiError, Json, page_request};
use crate::session::Authed;
use crate::state::AppState;
use crate::store::StoredValue;

/// AES-256-GCM nonce bytes in a sealed envelope.
const NONCE_LEN: usize = 12;
/// AES-256-GCM tag bytes in a sealed envelope.
const TAG_LEN: usize = 16;
/// Shortest sealed envelope: version, nonce, tag (an empty plaintext).
pub const MIN_SEALED_LEN: usize = 1 + NONCE_LEN + TAG_LEN;
/// Longest sealed envelope: one around the largest value the SDK seals.
pub const MAX_SEALED_LEN: usize = 1 + NONCE_LEN + MAX_VALUE_BYTES + TAG_LEN;

/// The JSON of one rename besides its four names, with room to spare:
/// `{"from":{"collection":"","id":""},"to":{"collection":"","id":""}},` is 66 bytes.
const RENAME_JSON_BYTES: usize = 128;

/// The rename route's body limit: [`MAX_RENAMES`] renames of the longest names,
/// the legacy pair escaped at worst (in JSON, `"` and `\` take two bytes each) and
/// the sealed pair as it is (base64url needs no escaping). About 2.3 MB.
pub const MAX_RENAME_BODY_BYTES: usize =
    MAX_RENAMES * (2 * (2 * MAX_STORED_NAME_BYTES) + 2 * MAX_STORED_NAME_BYTES + RENAME_JSON_BYTES);

/// Checks a key's names: each a stored name (a sealed name, or a legacy one).
fn key(collection: &str, id: &str) -> Result<(), ApiError> {
    validate::stored_name("collection", collection)?;
    validate::stored_name("id", id)?;
    Ok(())
}

/// Checks one side of the rename at `at` in the list, saying which one a refusal is
/// about.
fn renamed_key(at: usize, side: &str, checked: &KvKeyRequest) -> Result<(), ApiError> {
    key(&checked.collection, &checked.id).map_err(|mut err| {
        err.message = format!("renames[{at}].{side}: {}", err.message).into();
        err
    })
}

/// Checks a value's envelope and turns it into its stored form.
fn stored_value(value: KvValue) -> Result<StoredValue, ApiError> {
    match value {
        KvValue::Sealed { envelope } => {
            // Four base64 characters per three bytes: refuse before decoding.
            if envelope.len() > MAX_SEALED_LEN.div_ceil(3) * 4 {
                return Err(ApiError::too_large(format!(
                    "the sealed value is over {MAX_SEALED_LEN} bytes; store large data with client.storage"
                )));
            }
            let bytes = b64::decode(&envelope).ok_or_else(|| ApiError::invalid("value.envelope must be base64url"))?;
            match bytes.first() {
                Some(&SEALED_VERSION) => {}
                Some(&other) => {
                    return Err(ApiError::invalid(format!(
                        "sealed value has unknown version {other}; this accelerator knows version {SEALED_VERSION}"
                    )));
                }
                None => return Err(ApiError::invalid("value.envelope is empty")),
            }
            if bytes.len() < MIN_SEALED_LEN {
                return Err(ApiError::invalid(format!(
                    "value.envelope is {} bytes; a sealed value is at least {MIN_SEALED_LEN}",
                    bytes.len()
                )));
            }
            if bytes.len() > MAX_SEALED_LEN {
                return Err(ApiError::too_large(format!(
                    "the sealed value is over {MAX_SEALED_LEN} bytes; store large data with client.storage"
                )));
            }
            Ok(StoredValue::Sealed(bytes))
        }
        KvValue::Plain { json, mac } => {
            validate::value_json(&json)?;
            let mac: [u8; MAC_LEN] = b64::decode_array(&mac)
                .ok_or_else(|| ApiError::invalid(format!("value.mac must be {MAC_LEN} bytes of base64url")))?;
            Ok(StoredValue::Plain { json, mac })
        }
    }
}

/// `POST /v1/kv/set`.
pub async fn set(
    State(state): State<AppState>,
    authed: Authed,
    Json(req): Json<KvSetRequest>,
) -> Result<Json<KvWriteResponse>, ApiError> {
    key(&req.collection, &req.id)?;
    let value = stored_value(req.value)?;
    let user_id = authed.session.user_id;
    let allowance = state.config.user_allowance_bytes;
    let seq = state.records.kv_set(&user_id, &req.collection, &req.id, &value, allowance).await?;
    state.feed.wake(&user_id);
    Ok(Json(KvWriteResponse { seq }))
}

/// `POST /v1/kv/get`: 404 `NotFound` when absent.
pub async fn get(
    State(state): State<AppState>,
    authed: Authed,
    Json(req): Json<KvKeyRequest>,
) -> Result<Json<KvGetResponse>, ApiError> {
    key(&req.collection, &req.id)?;
    let user_id = authed.session.user_id;
    let found = state.records.kv_get(&user_id, &req.collection, &req.id).await?;
    Ok(Json(KvGetResponse { value: found.as_ref().map(KvValue::from) }))
}

/// `POST /v1/kv/delete`.
pub async fn delete(
    State(state): State<AppState>,
    authed: Authed,
    Json(req): Json<KvKeyRequest>,
) -> Result<Json<KvDeleteResponse>, ApiError> {
    key(&req.collection, &req.id)?;
    let user_id = authed.session.user_id;
    let seq = state.records.kv_delete(&user_id, &req.collection, &req.id).await?;
    if seq.is_some() {
        state.feed.wake(&user_id);
    }
    Ok(Json(KvDeleteResponse { existed: seq.is_some(), seq }))
}

/// `POST /v1/kv/list`.
pub async fn list(
    State(state): State<AppState>,
    authed: Authed,
    Json(req): Json<KvListRequest>,
) -> Result<Json<KvListResponse>, ApiError> {
    validate::stored_name("collection", &req.collection)?;
    let page = page_request(req.page)?;
    let user_id = authed.session.user_id;
    let ids = state.records.kv_list(&user_id, &req.collection, &page).await?;
    Ok(Json(KvListResponse { ids: ids.items, next: ids.next }))
}

/// `GET /v1/kv/legacy`: the caller's first keys still under legacy names, ordered by
/// collection, then id, each with its value as stored (the SDK seals a key's names
/// only if the value opens under them): at most [`MAX_RENAMES`], the first always,
/// then as many as keep the values past the first within
/// [`MAX_LEGACY_PAGE_VALUE_BYTES`](coffer_core::proto::MAX_LEGACY_PAGE_VALUE_BYTES) ([`crate::store::Kv::kv_legacy`]). Renaming them
/// empties the list.
pub async fn legacy(State(state): State<AppState>, authed: Authed) -> Result<Json<KvLegacyResponse>, ApiError> {
    let keys = state.records.kv_legacy(&authed.session.user_id, MAX_RENAMES).await?;
    let keys = keys
        .into_iter()
        .map(|key| KvLegacyKey { value: KvValue::from(&key.value), collection: key.collection, id: key.id })
        .collect();
    Ok(Json(KvLegacyResponse { keys }))
}

/// `POST /v1/kv/rename`: moves up to [`MAX_RENAMES`] of the caller's legacy keys to
/// their sealed names, in one transaction ([`crate::store::Kv::kv_rename`]); a caller
/// with no legacy key gets zeros at once (the request is checked all the same). No
/// new change is logged, so no feed is woken.
pub async fn rename(
    State(state): State<AppState>,
    authed: Authed,
    Json(req): Json<KvRenameRequest>,
) -> Result<Json<KvRenameResponse>, ApiError> {
    if req.renames.len() > MAX_RENAMES {
        return Err(ApiError::invalid(format!(
            "a rename request carries at most {MAX_RENAMES} renames, this one {}; send them in several requests",
            req.renames.len()
        )));
    }
    for (at, rename) in req.renames.iter().enumerate() {
        renamed_key(at, "from", &rename.from)?;
        renamed_key(at, "to", &rename.to)?;
    }
    let answer = state.records.kv_rename(&authed.session.user_id, &req.renames).await?;
    Ok(Json(answer))
}
