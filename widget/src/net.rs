//! Talking to the Cornetta server from the widget: `fetch` with JSON bodies built and read
//! through the browser's own `JSON` (serde_json would cost the wasm tens of KB), no cookies.

use js_sys::{JSON, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A property of a JS object (`undefined` when absent).
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A string property, `None` when absent, not a string, or empty.
pub(crate) fn text(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).as_string().filter(|s| !s.is_empty())
}

pub(crate) fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// An answer: the status and the parsed JSON body (`null` when it had none).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: JsValue,
}

impl Answer {
    /// Our API's error message (`{"error":{"message":…}}`), or the status.
    pub(crate) fn error_message(&self) -> String {
        text(&get(&self.body, "error"), "message").unwrap_or_else(|| format!("HTTP {}", self.status))
    }
}

/// Starts `fetch(url)` at once (the request is on its way when this returns) with
/// `credentials: "omit"`: no cookies either way. With a body it is a JSON `POST` with
/// `keepalive: true`, so the request outlives the page if the visitor is taken away to
/// WhatsApp (Fetch standard, "keepalive").
pub(crate) fn request(url: &str, body: Option<&Object>) -> Promise {
    let init = Object::new();
    set(&init, "credentials", &"omit".into());
    if let Some(body) = body {
        let headers = Object::new();
        set(&headers, "content-type", &"application/json".into());
        set(&init, "method", &"POST".into());
        set(&init, "headers", &headers);
        set(&init, "body", &JSON::stringify(body).map(JsValue::from).unwrap_or(JsValue::NULL));
        set(&init, "keepalive", &JsValue::TRUE);
    }
    match web_sys::window() {
        Some(w) => w.fetch_with_str_and_init(url, init.unchecked_ref()),
        None => Promise::reject(&"no window".into()),
    }
}

/// Waits for a request started by [`request`] and reads its JSON body.
pub(crate) async fn answer(request: Promise) -> Result<Answer, String> {
    let response: web_sys::Response = JsFuture::from(request)
        .await
        .map_err(|e| format!("the server could not be reached ({})", describe(&e)))?
        .unchecked_into();
    let status = response.status();
    let body = match response.json() {
        Ok(p) => JsFuture::from(p).await.unwrap_or(JsValue::NULL),
        Err(_) => JsValue::NULL,
    };
    Ok(Answer { status, body })
}

/// A JS error's message.
pub(crate) fn describe(e: &JsValue) -> String {
    text(e, "message").or_else(|| e.as_string()).unwrap_or_else(|| "unknown error".into())
}

/// Lets the page run its other tasks (input, rendering) before what follows: a promise a
/// zero-delay timer resolves, so the code after it runs in a task of its own.
pub(crate) async fn yield_to_page() {
    let promise = Promise::new(&mut |resolve, _| {
        let queued = web_sys::window().is_some_and(|w| w.set_timeout_with_callback(&resolve).is_ok());
        if !queued {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}
