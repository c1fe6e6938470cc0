//! Accounts in headless Chromium against a live accelerator: sign-up, sign-in,
//! wrong passwords, sign-out, password change, resume, anonymous clients.
#![cfg(target_arch = "wasm32")]

mod common;

use coffer::Client;
use common::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn rejected_code(result: Result<Client, JsValue>) -> String {
    match result {
        Ok(_) => panic!("expected a rejection"),
        Err(e) => coffer::error::code_of(&e).expect("a code"),
    }
}

#[wasm_bindgen_test]
async fn sign_in_on_a_second_device_reads_the_same_data() {
    let name = unique("second");
    let first = sign_up(&name).await;
    wait(first.kv().set("notes".into(), "n".into(), "hello".into(), None)).await.unwrap();
    let second = sign_in(&name).await;
    assert_eq!(second.username(), JsValue::from(name.as_str()));
    assert_eq!(second.user_id(), first.user_id());
    assert_eq!(wait(second.kv().get("notes".into(), "n".into())).await.unwrap(), "hello");
}

#[wasm_bindgen_test]
async fn wrong_password_and_unknown_user_are_refused_alike() {
    let name = unique("wrongpw");
    sign_up(&name).await;
    let wrong = Client::sign_in(creds(&name, "not the password").unchecked_into()).await;
    assert_eq!(rejected_code(wrong).await, "Unauthorized");
    let unknown = Client::sign_in(creds(&unique("nobody"), PASSWORD).unchecked_into()).await;
    assert_eq!(rejected_code(unknown).await, "Unauthorized");
}

#[wasm_bindgen_test]
async fn taken_username_and_bad_options_are_refused() {
    let name = unique("taken");
    sign_up(&name).await;
    let again = Client::sign_up(creds(&name, PASSWORD).unchecked_into()).await;
    assert_eq!(rejected_code(again).await, "Conflict");
    let spaces = Client::sign_up(creds("has spaces", PASSWORD).unchecked_into()).await;
    assert_eq!(rejected_code(spaces).await, "InvalidInput");
    let no_url = obj(&[("username", "x".into()), ("password", "y".into())]);
    assert_eq!(rejected_code(Client::sign_in(no_url.unchecked_into()).await).await, "InvalidInput");
    let bad_remember =
        obj(&[("url", URL.into()), ("username", "x".into()), ("password", "y".into()), ("remember", "forever".into())]);
    assert_eq!(rejected_code(Client::sign_in(bad_remember.unchecked_into()).await).await, "InvalidInput");
    let unreachable = obj(&[("url", "http://127.0.0.1:9".into()), ("username", "x".into()), ("password", "y".into())]);
    assert_eq!(rejected_code(Client::sign_in(unreachable.unchecked_into()).await).await, "Network");
}

/// Options are read into typed structs (serde-wasm-bindgen), but a refusal still
/// names the call and the field in the SDK's words, not serde's.
#[wasm_bindgen_test]
async fn bad_options_name_the_call_and_the_field() {
    async fn message(result: Result<Client, JsValue>) -> String {
        let e = result.err().expect("a rejection");
        assert_eq!(coffer::error::code_of(&e).as_deref(), Some("InvalidInput"));
        e.unchecked_into::<js_sys::Error>().message().into()
    }
    let no_url = obj(&[("username", "x".into()), ("password", "y".into())]);
    assert_eq!(message(Client::sign_in(no_url.unchecked_into()).await).await, "signIn options.url is required");
    let number = obj(&[("url", URL.into()), ("username", 5.into()), ("password", "y".into())]);
    assert_eq!(
        message(Client::sign_up(number.unchecked_into()).await).await,
        "signUp options.username must be a string"
    );
    let forever =
        obj(&[("url", URL.into()), ("username", "x".into()), ("password", "y".into()), ("remember", "forever".into())]);
    assert_eq!(
        message(Client::sign_in(forever.unchecked_into()).await).await,
        r#"signIn options.remember must be "none", "session" or "local", not "forever""#
    );
    assert_eq!(
        message(Client::anonymous(JsValue::from(3).unchecked_into()).await).await,
        "anonymous options must be an object"
    );
}

#[wasm_bindgen_test]
async fn sign_out_revokes_the_session() {
    let client = sign_up(&unique("signout")).await;
    wait(client.sign_out()).await.unwrap();
    assert_eq!(client.username(), JsValue::NULL);
    assert_eq!(code_of(client.kv().get("a".into(), "b".into())).await, "Unauthorized");
}

#[wasm_bindgen_test]
async fn change_password_keeps_data_and_retires_the_old_password() {
    let name = unique("rotate");
    let client = sign_up(&name).await;
    let other_device = sign_in(&name).await;
    wait(client.kv().set("k".into(), "v".into(), "kept".into(), None)).await.unwrap();
    let options = obj(&[("currentPassword", PASSWORD.into()), ("newPassword", "a new password".into())]);
    wait(client.change_password(options.unchecked_into())).await.unwrap();

    let old = Client::sign_in(creds(&name, PASSWORD).unchecked_into()).await;
    assert_eq!(rejected_code(old).await, "Unauthorized");
    let fresh = Client::sign_in(creds(&name, "a new password").unchecked_into()).await.unwrap();
    assert_eq!(wait(fresh.kv().get("k".into(), "v".into())).await.unwrap(), "kept");
    // The device that changed it stays signed in; the other one is revoked.
    assert_eq!(wait(client.kv().get("k".into(), "v".into())).await.unwrap(), "kept");
    assert_eq!(code_of(other_device.kv().get("k".into(), "v".into())).await, "Unauthorized");

    let wrong = obj(&[("currentPassword", "nope".into()), ("newPassword", "x".into())]);
    assert_eq!(code_of(client.change_password(wrong.unchecked_into())).await, "Unauthorized");
}

#[wasm_bindgen_test]
async fn remembered_session_resumes_until_signed_out() {
    let name = unique("resume");
    let options = obj(&[
        ("url", URL.into()),
        ("username", name.as_str().into()),
        ("password", PASSWORD.into()),
        ("remember", "session".into()),
    ]);
    let client = Client::sign_up(options.unchecked_into()).await.unwrap();
    wait(client.kv().set("k".into(), "v".into(), "1".into(), None)).await.unwrap();
    let url = obj(&[("url", URL.into())]);
    let resumed: Client = Client::resume(url.clone().unchecked_into()).await.unwrap().unchecked_into_client();
    assert_eq!(resumed.username(), JsValue::from(name.as_str()));
    assert_eq!(wait(resumed.kv().get("k".into(), "v".into())).await.unwrap(), "1");
    wait(client.sign_out()).await.unwrap();
    assert_eq!(Client::resume(url.unchecked_into()).await.unwrap(), JsValue::NULL);
}

#[wasm_bindgen_test]
async fn anonymous_clients_cannot_use_kv() {
    let anon = Client::anonymous(obj(&[("url", URL.into())]).unchecked_into()).await.unwrap();
    assert_eq!(anon.username(), JsValue::NULL);
    assert_eq!(code_of(anon.kv().get("a".into(), "b".into())).await, "Unauthorized");
}

trait IntoClient {
    fn unchecked_into_client(self) -> Client;
}

impl IntoClient for JsValue {
    /// `resume` resolves to a JS `Client` object; take back the Rust handle.
    fn unchecked_into_client(self) -> Client {
        use wasm_bindgen::convert::TryFromJsValue;
        Client::try_from_js_value(self).expect("resume resolved to a Client")
    }
}
