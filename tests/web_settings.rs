//! `/settings.js`, what the built-in pages read: the API's path and WebSocket port, the
//! ICE servers, and `[web.phone]` (the lab page's phone form filled in) only when set.

mod common;

use serde_json::Value;

/// The `window.CARDEA = {…};` object the gateway serves.
async fn settings(gw: &common::Gw) -> Value {
    let url = gw.base.replace("/janus", "/settings.js");
    let body = gw
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let json = body
        .strip_prefix("window.CARDEA = ")
        .and_then(|b| b.trim_end().strip_suffix(';'))
        .unwrap_or_else(|| panic!("not a settings script: {body}"));
    serde_json::from_str(json).unwrap()
}

#[tokio::test]
async fn the_phone_preset_reaches_the_page_only_when_configured() {
    let gw = common::start(|c| c.web.enabled = true).await;
    let s = settings(&gw).await;
    assert_eq!(s["httpPath"], "/janus");
    assert!(s.get("phone").is_none(), "{s}");

    let gw = common::start(|c| {
        c.web.enabled = true;
        c.web.phone.user = "sip:alice@172.29.89.20".into();
        c.web.phone.secret = "alice-lab \"quoted\" </script>".into();
        c.web.phone.dial = "sip:1000@172.29.89.20".into();
    })
    .await;
    let s = settings(&gw).await;
    assert_eq!(s["phone"]["user"], "sip:alice@172.29.89.20");
    assert_eq!(s["phone"]["secret"], "alice-lab \"quoted\" </script>");
    assert_eq!(s["phone"]["proxy"], "");
    assert_eq!(s["phone"]["dial"], "sip:1000@172.29.89.20");
}
