//! WHEP (WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep) on the main HTTP listener:
//!
//! * `POST <whep_path>/<mountpoint id>` with an SDP offer (`application/sdp`):
//!   `201 Created`, the answer, `Location` of the viewer's resource, `ETag`, and a
//!   `Link` per configured ICE server (with TURN REST credentials made per request);
//! * `PATCH <resource>` with `application/trickle-ice-sdpfrag`: candidates are
//!   trickled (`204`); new ICE credentials restart ICE in the same PeerConnection
//!   (`200` with our new credentials and candidates as a fragment);
//! * `DELETE <resource>`: the viewer leaves;
//! * `OPTIONS` on either: CORS preflight, `Accept-Post`/`Accept-Patch`.
//!
//! What a viewer is and who may be one is the API core's (`api::whep`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::Hub;
use crate::api::sdpfrag;
use crate::api::whep::{WhepError, WhepPatch};

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// Largest offer or fragment taken (a browser's offer for audio and video is 5-10 KB).
const MAX_SDP: usize = 32 * 1024;
/// How long a `PATCH` restarting ICE waits for the media engine's answer.
const RESTART_WAIT: Duration = Duration::from_secs(5);
/// How long a body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes at `http.whep_path` and `http.whip_path` (each "" = off).
pub(crate) fn router(hub: Arc<Hub>) -> Router {
    let mut router = Router::new();
    let http = &hub.config.http;
    for (base, start) in [(&http.whep_path, Role::Whep), (&http.whip_path, Role::Whip)] {
        if base.is_empty() {
            continue;
        }
        let post_handler = match start {
            Role::Whep => post(start_whep),
            Role::Whip => post(start_whip),
        };
        router = router
            .route(&format!("{base}/{{id}}"), post_handler.options(preflight))
            .route(
                &format!("{base}/{{id}}/{{resource}}"),
                axum::routing::patch(patch).delete(stop).options(preflight),
            );
    }
    router
        .layer(middleware::from_fn_with_state(hub.clone(), cors))
        .with_state(hub)
}

/// A viewer (WHEP) or a publisher (WHIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Whep,
    Whip,
}

async fn start_whep(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    start(hub, peer, id, headers, body, Role::Whep).await
}

async fn start_whip(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    start(hub, peer, id, headers, body, Role::Whip).await
}

async fn start(
    hub: Arc<Hub>,
    peer: SocketAddr,
    id: String,
    headers: HeaderMap,
    body: Body,
    role: Role,
) -> Response {
    let offer = match read(&headers, SDP, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(offer) = std::str::from_utf8(&offer) else {
        return text(StatusCode::BAD_REQUEST, "the offer is not UTF-8");
    };
    let bearer = bearer(&headers);
    let started = hub.with_gateway(|g, now| match role {
        Role::Whep => g.whep_start(now, Some(peer.ip()), &id, bearer.as_deref(), offer),
        Role::Whip => g.whip_start(now, Some(peer.ip()), &id, bearer.as_deref(), offer),
    });
    let v = match started {
        Ok(v) => v,
        Err(e) => return refusal(e, bearer.is_some()),
    };
    let base = match role {
        Role::Whep => &hub.config.http.whep_path,
        Role::Whip => &hub.config.http.whip_path,
    };
    let mut resp = (StatusCode::CREATED, v.answer).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    if let Ok(loc) = HeaderValue::from_str(&format!("{base}/{id}/{}", v.resource)) {
        h.insert(header::LOCATION, loc);
    }
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", v.etag)) {
        h.insert(header::ETAG, tag);
    }
    h.insert("accept-patch", HeaderValue::from_static(SDPFRAG));
    let now_unix = super::ice_servers::unix_now();
    for link in ice_server_links(&hub.config.media.ice_servers, now_unix) {
        if let Ok(l) = HeaderValue::from_str(&link) {
            h.append(header::LINK, l);
        }
    }
    resp
}

async fn patch(
    State(hub): State<Arc<Hub>>,
    Path((_id, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read(&headers, SDPFRAG, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let frag = match sdpfrag::parse(&body) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let outcome = hub.with_gateway(|g, now| g.whep_patch(now, &resource, if_match, &frag));
    let sid = match outcome {
        Ok(WhepPatch::Trickled) => return StatusCode::NO_CONTENT.into_response(),
        Ok(WhepPatch::Restarting(sid)) => sid,
        Err(e) => return refusal(e, true),
    };
    // The media engine answers the restart's offer: wait for it.
    #[allow(clippy::disallowed_methods)] // the transport driver owns the wall clock of its waits
    let deadline = tokio::time::Instant::now() + RESTART_WAIT;
    let notify = hub.waiter(sid);
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match hub.with_gateway(|g, _| g.whep_restart_answer(&resource)) {
            Some(Ok((answer, etag))) => {
                let mut resp = (StatusCode::OK, sdpfrag::answer_fragment(&answer)).into_response();
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDPFRAG));
                if let Ok(tag) = HeaderValue::from_str(&format!("\"{etag}\"")) {
                    h.insert(header::ETAG, tag);
                }
                return resp;
            }
            Some(Err(e)) => return refusal(e, true),
            None => {}
        }
        tokio::select! {
            _ = &mut notified => continue,
            _ = tokio::time::sleep_until(deadline) => {
                return text(StatusCode::SERVICE_UNAVAILABLE, "the ICE restart was not answered in time");
            }
        }
    }
}

async fn stop(
    State(hub): State<Arc<Hub>>,
    Path((_id, resource)): Path<(String, String)>,
) -> Response {
    if hub.with_gateway(|g, now| g.whep_stop(now, &resource)) {
        StatusCode::OK.into_response()
    } else {
        text(StatusCode::NOT_FOUND, "No such WHEP resource")
    }
}

/// `OPTIONS`: what the endpoint takes (the CORS layer adds the rest).
async fn preflight() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert("accept-post", HeaderValue::from_static(SDP));
    h.insert("accept-patch", HeaderValue::from_static(SDPFRAG));
    resp
}

/// CORS for players on other origins: `http.allow_origin`, the methods and headers
/// WHEP uses, and the response headers a player must read.
async fn cors(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let origin = HeaderValue::from_str(&hub.config.http.allow_origin)
        .unwrap_or(HeaderValue::from_static("*"));
    let mut resp = if req.method() == Method::OPTIONS {
        preflight().await
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, Accept-Patch, Accept-Post"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

/// The HTTP status of a refusal; 401 (with `WWW-Authenticate`) when no credential
/// was given, 403 when a wrong one was.
fn refusal(e: WhepError, had_credential: bool) -> Response {
    let status = match &e {
        WhepError::NotFound(_) => StatusCode::NOT_FOUND,
        WhepError::Unauthorized(_) if had_credential => StatusCode::FORBIDDEN,
        WhepError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        WhepError::BadRequest(_) => StatusCode::BAD_REQUEST,
        WhepError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        WhepError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
        WhepError::Conflict(_) => StatusCode::CONFLICT,
    };
    let mut resp = text(status, &e.to_string());
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, format!("{body}\n")).into_response()
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

/// The `Authorization: Bearer` value (UTF-8: a secret may be multibyte); a header that
/// is not a bearer counts as one that is wrong (an empty credential), not as none.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?;
    let v = std::str::from_utf8(v.as_bytes()).unwrap_or_default();
    let token = v
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map(|_| v[7..].trim())
        .unwrap_or_default();
    Some(token.to_owned())
}

/// The body, if its `Content-Type` is `want` (else 415), up to [`MAX_SDP`] bytes (413)
/// within [`BODY_TIMEOUT`] (408).
async fn read(headers: &HeaderMap, want: &str, body: Body) -> Result<axum::body::Bytes, Response> {
    if !content_type_is(headers, want) {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("expected {want}"),
        ));
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_SDP)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("larger than {MAX_SDP} bytes"),
        )),
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "body not received in time",
        )),
    }
}

/// `Link` headers for the configured ICE servers at `now_unix`, as the WHEP draft
/// writes them (quotes, backslashes and line breaks taken out of the values).
fn ice_server_links(servers: &[crate::config::IceServerConfig], now_unix: u64) -> Vec<String> {
    let servers = super::ice_servers::for_browsers(servers, now_unix);
    let quote = |s: &str| s.replace(['"', '\\', '\r', '\n'], "");
    let mut links = Vec::new();
    for s in servers.as_array().into_iter().flatten() {
        let urls: Vec<&str> = match &s["urls"] {
            serde_json::Value::String(u) => vec![u.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|u| u.as_str()).collect(),
            _ => Vec::new(),
        };
        for url in urls {
            let mut link = format!(
                "<{}>; rel=\"ice-server\"",
                quote(url).replace(['<', '>'], "")
            );
            if let (Some(user), Some(cred)) = (s["username"].as_str(), s["credential"].as_str()) {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quote(user),
                    quote(cred)
                ));
            }
            links.push(link);
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_is_read_case_insensitively_and_a_non_bearer_is_a_wrong_one() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        assert_eq!(bearer(&h).as_deref(), Some(""));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xc3\xa9").unwrap(),
        );
        assert_eq!(bearer(&h).as_deref(), Some("\u{e9}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(bearer(&h).as_deref(), Some(""));
    }

    #[test]
    fn ice_servers_become_link_headers_with_their_credentials() {
        let servers: Vec<crate::config::IceServerConfig> = toml::from_str::<toml::Value>(
            r#"
                [[s]]
                urls = ["stun:stun.example.org:3478"]
                [[s]]
                urls = ["turn:t.example.org:3478?transport=udp", "turn:t.example.org:3478?transport=tcp"]
                username = "lab"
                credential = "pa\"ss\r\nX"
                [[s]]
                urls = ["turn:r.example.org:3478"]
                rest_secret = "n0rth-secret"
                rest_user = "cardea"
            "#,
        )
        .unwrap()["s"]
            .clone()
            .try_into()
            .unwrap();
        let links = ice_server_links(&servers, 1_700_000_000 - 86_400);
        assert_eq!(links.len(), 4, "{links:?}");
        assert_eq!(links[0], "<stun:stun.example.org:3478>; rel=\"ice-server\"");
        assert_eq!(
            links[1],
            "<turn:t.example.org:3478?transport=udp>; rel=\"ice-server\"; username=\"lab\"; \
             credential=\"passX\"; credential-type=\"password\""
        );
        // coturn's REST scheme: a user that expires after rest_ttl (a day by default).
        assert!(
            links[3].contains("username=\"1700000000:cardea\""),
            "{links:?}"
        );
        for l in &links {
            assert!(HeaderValue::from_str(l).is_ok(), "{l}");
        }
    }

    #[test]
    fn content_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert!(!content_type_is(&h, SDP));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/SDP; charset=utf-8"),
        );
        assert!(content_type_is(&h, SDP));
        assert!(!content_type_is(&h, SDPFRAG));
    }
}
