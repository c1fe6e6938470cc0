//! client.kv in headless Chromium against a live accelerator (started by
//! scripts/test; its URL is baked in as COFFER_TEST_URL).
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use js_sys::{JSON, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn parse(text: &str) -> JsValue {
    JSON::parse(text).unwrap()
}

#[wasm_bindgen_test]
async fn seed_examples_round_trip() {
    let client = sign_up(&unique("seed")).await;
    let kv = client.kv();
    wait(kv.set("todos".into(), "t1".into(), parse(r#"{"title":"Ship docs","done":false}"#), None)).await.unwrap();
    wait(kv.set("todos".into(), "t2".into(), parse(r#"{"title":"Write tests","done":true}"#), None)).await.unwrap();
    let todo = wait(kv.get("todos".into(), "t1".into())).await.unwrap();
    assert_eq!(json(&todo), r#"{"title":"Ship docs","done":false}"#);
    let ids = wait(kv.list("todos".into())).await.unwrap();
    assert_eq!(json(&ids), r#"["t1","t2"]"#);
    assert_eq!(wait(kv.delete("todos".into(), "t1".into())).await.unwrap(), JsValue::TRUE);
    assert_eq!(wait(kv.delete("todos".into(), "t1".into())).await.unwrap(), JsValue::FALSE);
    assert_eq!(wait(kv.get("todos".into(), "t1".into())).await.unwrap(), JsValue::NULL);
    assert_eq!(json(&wait(kv.list("todos".into())).await.unwrap()), r#"["t2"]"#);
    assert_eq!(json(&wait(kv.list("empty".into())).await.unwrap()), "[]");
}

#[wasm_bindgen_test]
async fn plaintext_values_pass_through_get() {
    let client = sign_up(&unique("plain")).await;
    let kv = client.kv();
    let options = obj(&[("encrypt", JsValue::FALSE)]);
    wait(kv.set("public-profile".into(), "ada".into(), parse(r#"{"handle":"@ada"}"#), Some(options))).await.unwrap();
    let back = wait(kv.get("public-profile".into(), "ada".into())).await.unwrap();
    assert_eq!(json(&back), r#"{"handle":"@ada"}"#);
}

#[wasm_bindgen_test]
async fn values_of_every_json_kind_round_trip() {
    let client = sign_up(&unique("kinds")).await;
    let kv = client.kv();
    for (i, text) in ["null", "0", "-1.5e+300", "true", r#""""#, r#""ünï 🎉""#, "[]", "{}", r#"{"a":[1,{"b":null}]}"#]
        .iter()
        .enumerate()
    {
        let id = format!("v{i}");
        wait(kv.set("kinds".into(), id.clone().into(), parse(text), None)).await.unwrap();
        let back = wait(kv.get("kinds".into(), id.into())).await.unwrap();
        assert_eq!(json(&back), *text);
    }
}

#[wasm_bindgen_test]
async fn two_devices_of_one_user_see_each_others_changes() {
    let name = unique("devices");
    let phone = sign_up(&name).await;
    let laptop = sign_in(&name).await;
    let seen = Recorder::new();
    let off = laptop.kv().on("change".into(), seen.function()).unwrap();

    wait(phone.kv().set("todos".into(), "t1".into(), parse(r#"{"title":"from phone"}"#), None)).await.unwrap();
    eventually("the set to reach the laptop", || seen.len() >= 1).await;
    assert_eq!(seen.field(0, "collection"), "todos");
    assert_eq!(seen.field(0, "id"), "t1");
    assert_eq!(seen.field(0, "type"), "set");
    assert_eq!(json(&seen.field(0, "data")), r#"{"title":"from phone"}"#);

    wait(phone.kv().delete("todos".into(), "t1".into())).await.unwrap();
    eventually("the delete to reach the laptop", || seen.len() >= 2).await;
    assert_eq!(seen.field(1, "type"), "delete");
    assert_eq!(seen.field(1, "data"), JsValue::NULL);

    // After off(), nothing more arrives, even though changes keep happening.
    off.call0(&JsValue::NULL).unwrap();
    let witness = Recorder::new();
    let _keep = laptop.kv().on("change".into(), witness.function()).unwrap();
    wait(phone.kv().set("todos".into(), "t2".into(), parse("2"), None)).await.unwrap();
    eventually("the witness listener to see the set", || witness.len() >= 1).await;
    assert_eq!(seen.len(), 2, "an unsubscribed listener got an event");
}

#[wasm_bindgen_test]
async fn another_user_sees_nothing() {
    let ada = sign_up(&unique("ada")).await;
    let eve = sign_up(&unique("eve")).await;
    let spy = Recorder::new();
    let _off = eve.kv().on("change".into(), spy.function()).unwrap();
    let mine = Recorder::new();
    let _off2 = ada.kv().on("change".into(), mine.function()).unwrap();

    wait(ada.kv().set("secrets".into(), "s1".into(), parse(r#""ada's""#), None)).await.unwrap();
    eventually("ada's own device to see her change", || mine.len() >= 1).await;
    assert_eq!(wait(eve.kv().get("secrets".into(), "s1".into())).await.unwrap(), JsValue::NULL);
    assert_eq!(json(&wait(eve.kv().list("secrets".into())).await.unwrap()), "[]");
    assert_eq!(wait(eve.kv().delete("secrets".into(), "s1".into())).await.unwrap(), JsValue::FALSE);
    assert_eq!(spy.len(), 0, "another user's listener saw ada's change");
    let still = wait(ada.kv().get("secrets".into(), "s1".into())).await.unwrap();
    assert_eq!(still, "ada's");
}

#[wasm_bindgen_test]
async fn a_listener_that_throws_or_calls_back_breaks_nothing() {
    let name = unique("reentrant");
    let client = sign_up(&name).await;
    let kv = client.kv();
    let thrower = Closure::<dyn FnMut(JsValue)>::new(|_| wasm_bindgen::throw_str("listener bug"));
    let _off1 = kv.on("change".into(), thrower.as_ref().clone()).unwrap();
    let reads = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = reads.clone();
    let kv2 = client.kv();
    let reader = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        let id = Reflect::get(&e, &"id".into()).unwrap();
        // Calls back into the client from inside the listener.
        sink.borrow_mut().push(kv2.get("c".into(), id));
    });
    let _off2 = kv.on("change".into(), reader.as_ref().clone()).unwrap();
    wait(kv.set("c".into(), "x".into(), parse("42"), None)).await.unwrap();
    eventually("the re-entrant listener to run", || !reads.borrow().is_empty()).await;
    let pending = reads.borrow_mut().remove(0);
    assert_eq!(wait(pending).await.unwrap(), 42);
}

#[wasm_bindgen_test]
async fn bad_input_is_refused_with_codes() {
    let client = sign_up(&unique("bad")).await;
    let kv = client.kv();
    let value = parse("1");
    assert_eq!(code_of(kv.set("todos".into(), "".into(), value.clone(), None)).await, "InvalidInput");
    assert_eq!(code_of(kv.set("".into(), "id".into(), value.clone(), None)).await, "InvalidInput");
    assert_eq!(code_of(kv.set("$files".into(), "id".into(), value.clone(), None)).await, "InvalidInput");
    assert_eq!(code_of(kv.get("$spaces".into(), "id".into())).await, "InvalidInput");
    assert_eq!(code_of(kv.list("$files".into())).await, "InvalidInput");
    assert_eq!(code_of(kv.set("todos".into(), "x".repeat(257).into(), value.clone(), None)).await, "InvalidInput");
    assert_eq!(code_of(kv.set(JsValue::from(5), "id".into(), value.clone(), None)).await, "InvalidInput");
    assert_eq!(code_of(kv.get("todos".into(), JsValue::UNDEFINED)).await, "InvalidInput");

    let function = js_sys::Function::new_no_args("return 1");
    assert_eq!(code_of(kv.set("todos".into(), "f".into(), function.clone().into(), None)).await, "InvalidInput");
    let nested = obj(&[("callback", function.into())]);
    assert_eq!(code_of(kv.set("todos".into(), "f".into(), nested, None)).await, "InvalidInput");
    let bigint = js_sys::eval("10n").unwrap();
    assert_eq!(code_of(kv.set("todos".into(), "b".into(), bigint, None)).await, "InvalidInput");
    assert_eq!(code_of(kv.set("todos".into(), "n".into(), JsValue::from_f64(f64::NAN), None)).await, "InvalidInput");
    assert_eq!(code_of(kv.set("todos".into(), "u".into(), JsValue::UNDEFINED, None)).await, "InvalidInput");
    let cycle = js_sys::eval("(() => { const a = {}; a.self = a; return a; })()").unwrap();
    assert_eq!(code_of(kv.set("todos".into(), "c".into(), cycle, None)).await, "InvalidInput");
    let huge: JsValue = "x".repeat(256 * 1024).into();
    assert_eq!(code_of(kv.set("todos".into(), "big".into(), huge, None)).await, "TooLarge");
    let options = obj(&[("encrypt", "yes".into())]);
    let refused = wait(kv.set("todos".into(), "o".into(), value.clone(), Some(options))).await.unwrap_err();
    assert_eq!(coffer::error::code_of(&refused).as_deref(), Some("InvalidInput"));
    let message: String = refused.unchecked_into::<js_sys::Error>().message().into();
    assert_eq!(message, "kv.set options.encrypt must be true or false");
    assert!(kv.on("chnage".into(), js_sys::Function::new_no_args("").into()).is_err());
    assert!(kv.on("change".into(), JsValue::from(3)).is_err());

    // Nothing of the above was stored.
    assert_eq!(json(&wait(kv.list("todos".into())).await.unwrap()), "[]");
}

#[wasm_bindgen_test]
async fn list_follows_the_pages() {
    // More ids than one page of the accelerator's answer (1,000): `list` reads them all.
    let client = sign_up(&unique("pages")).await;
    let kv = client.kv();
    let total = 1_050;
    for batch in (0..total).collect::<Vec<_>>().chunks(50) {
        let writes = batch.iter().map(|n| wait(kv.set("many".into(), format!("k{n:04}").into(), parse("1"), None)));
        for written in futures_util::future::join_all(writes).await {
            written.unwrap();
        }
    }
    let ids = wait(kv.list("many".into())).await.unwrap();
    let ids: Vec<String> = js_sys::Array::from(&ids).iter().map(|v| v.as_string().unwrap()).collect();
    let expected: Vec<String> = (0..total).map(|n| format!("k{n:04}")).collect();
    assert_eq!(ids, expected, "every id once, in order, across two pages");
}
