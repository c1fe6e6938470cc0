//! Helpers for the browser tests: the accelerator's URL, fresh users, awaiting the
//! SDK's promises, and waiting for events without asserting timings.
#![allow(dead_code, missing_docs)]

use std::cell::RefCell;
use std::rc::Rc;

use coffer::Client;
use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The accelerator the test script started (baked in at build time).
pub const URL: &str = match option_env!("COFFER_TEST_URL") {
    Some(url) => url,
    None => "http://127.0.0.1:8787",
};

pub const PASSWORD: &str = "correct horse battery staple";

/// A username no other test (or earlier run) has used.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{suffix}")
}

/// Builds a plain JS object from string pairs.
pub fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

pub fn creds(username: &str, password: &str) -> JsValue {
    obj(&[
        ("url", URL.into()),
        ("username", username.into()),
        ("password", password.into()),
        ("remember", "none".into()),
    ])
}

pub async fn sign_up(username: &str) -> Client {
    Client::sign_up(creds(username, PASSWORD).unchecked_into()).await.expect("sign-up works")
}

pub async fn sign_in(username: &str) -> Client {
    Client::sign_in(creds(username, PASSWORD).unchecked_into()).await.expect("sign-in works")
}

/// Awaits an SDK promise.
pub async fn wait(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

/// The `code` of a rejected promise (panics if it resolved).
pub async fn code_of(promise: Promise) -> String {
    match wait(promise).await {
        Ok(v) => panic!("expected a rejection, got {v:?}"),
        Err(e) => {
            assert_eq!(Reflect::get(&e, &"name".into()).unwrap(), "CofferError", "rejections are CofferErrors: {e:?}");
            coffer::error::code_of(&e).expect("every rejection has a code")
        }
    }
}

pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout: js_sys::Function = Reflect::get(&global, &"setTimeout".into()).unwrap().unchecked_into();
        set_timeout.call2(&global, &resolve, &ms.into()).unwrap();
    });
    JsFuture::from(promise).await.unwrap();
}

/// Polls `done` until it holds; gives up (failing the test) after 20 s.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        sleep(50).await;
    }
    panic!("timed out waiting for {what}");
}

/// A listener that records every event it gets.
pub struct Recorder {
    pub events: Rc<RefCell<Vec<JsValue>>>,
    pub callback: Closure<dyn FnMut(JsValue)>,
}

impl Recorder {
    pub fn new() -> Self {
        let events = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&events);
        let callback = Closure::new(move |e: JsValue| sink.borrow_mut().push(e));
        Recorder { events, callback }
    }

    pub fn function(&self) -> JsValue {
        self.callback.as_ref().clone()
    }

    pub fn len(&self) -> usize {
        self.events.borrow().len()
    }

    /// `field` of event `i`.
    pub fn field(&self, i: usize, field: &str) -> JsValue {
        Reflect::get(&self.events.borrow()[i], &field.into()).unwrap()
    }
}

/// Compares JS values as JSON text.
pub fn json(value: &JsValue) -> String {
    js_sys::JSON::stringify(value).map(String::from).unwrap_or_else(|_| "<not JSON>".into())
}
