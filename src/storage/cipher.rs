//! Sealing and opening file chunks: through WebCrypto's AES-GCM where the browser
//! has it (about six times faster than AES in wasm here), else through the core's
//! `aes-gcm`. Same algorithm, key, nonce and AAD, so the bytes are identical either
//! way (a browser test proves it, both directions).

use coffer_core::ErrorCode;
use coffer_core::chunk::{self, CHUNK_NONCE, ChunkKey, ChunkPos};
use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::copies;
use crate::error::{SdkError, SdkResult};

#[wasm_bindgen(module = "/src/browser.js")]
extern "C" {
    #[wasm_bindgen(js_name = subtleAvailable)]
    fn subtle_available() -> bool;
    #[wasm_bindgen(js_name = subtleSeal)]
    fn subtle_seal(raw: &Uint8Array, iv: &Uint8Array, aad: &Uint8Array, plaintext: &Uint8Array) -> js_sys::Promise;
    #[wasm_bindgen(js_name = subtleOpen)]
    fn subtle_open(raw: &Uint8Array, iv: &Uint8Array, aad: &Uint8Array, sealed: &Uint8Array) -> js_sys::Promise;
}

/// Which implementation seals and opens chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The browser's `crypto.subtle`.
    WebCrypto,
    /// The core's `aes-gcm` compiled to wasm.
    Wasm,
}

impl Engine {
    /// WebCrypto when the page has it (secure contexts), else wasm.
    pub fn best() -> Engine {
        if subtle_available() { Engine::WebCrypto } else { Engine::Wasm }
    }
}

fn integrity(pos: ChunkPos) -> SdkError {
    SdkError::new(
        ErrorCode::Integrity,
        format!("chunk {pos:?} failed authentication: the file was altered, or the manifest is not this file's"),
    )
}

/// Seals one chunk (plaintext in a JS buffer); returns ciphertext ‖ tag in a JS
/// buffer of its own.
pub async fn seal(engine: Engine, key: &ChunkKey, pos: ChunkPos, plaintext: &Uint8Array) -> SdkResult<Uint8Array> {
    match engine {
        Engine::Wasm => {
            copies::copied(2 * plaintext.length() as usize);
            Ok(Uint8Array::from(&chunk::seal_at(key, pos, &plaintext.to_vec())[..]))
        }
        Engine::WebCrypto => {
            let promise = subtle_seal(
                &Uint8Array::from(&key.as_bytes()[..]),
                &Uint8Array::from(&CHUNK_NONCE[..]),
                &Uint8Array::from(&pos.aad()[..]),
                plaintext,
            );
            let sealed = JsFuture::from(promise).await.map_err(|e| {
                SdkError::new(
                    ErrorCode::Internal,
                    format!("WebCrypto refused to seal: {}", crate::error::describe_js(&e)),
                )
            })?;
            Ok(sealed.unchecked_into())
        }
    }
}

/// Opens one sealed chunk; returns the plaintext in a JS buffer.
pub async fn open(engine: Engine, key: &ChunkKey, pos: ChunkPos, sealed: &[u8]) -> SdkResult<Uint8Array> {
    match engine {
        Engine::Wasm => {
            let plain = chunk::open_at(key, pos, sealed).map_err(|_| integrity(pos))?;
            copies::copied(plain.len());
            Ok(Uint8Array::from(&plain[..]))
        }
        Engine::WebCrypto => {
            let promise = subtle_open(
                &Uint8Array::from(&key.as_bytes()[..]),
                &Uint8Array::from(&CHUNK_NONCE[..]),
                &Uint8Array::from(&pos.aad()[..]),
                &Uint8Array::from(sealed),
            );
            copies::copied(sealed.len());
            let plain = JsFuture::from(promise).await.map_err(|_| integrity(pos))?;
            Ok(plain.unchecked_into())
        }
    }
}
