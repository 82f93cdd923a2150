//! `GET /snapshot/<mountpoint>.jpg`: the latest keyframe of a mountpoint's video as a
//! JPEG picture, for posters, thumbnails and home-automation cards. The media engine
//! only hands keyframes over (see `media::snapshot`); decoding runs on the blocking
//! pool, at most once per keyframe (the picture is cached until the next one) and
//! [`MAX_DECODES`] at a time, so asking often costs the media path nothing.
//!
//! Access as for watching: the mountpoint's `pin` (or its `secret`) as a query
//! parameter, and `apisecret` or `token` when the API needs them. Unknown mountpoint:
//! 404; wrong or missing credentials: 403; no keyframe seen yet: 503.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cardea_codecs::keyframe::VideoCodec;
use cardea_codecs::snapshot::{keyframe_to_jpeg, Jpeg};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use super::Hub;
use crate::api::SourceId;
use crate::contain::lock;
use crate::media::source::SourcePacket;
use crate::plugin::ViewRefusal;

/// Pictures decoded at once, across mountpoints.
const MAX_DECODES: usize = 2;
/// Pictures kept (one per source).
const MAX_CACHED: usize = 1024;

/// The pictures made, one per source, with the keyframe each came from.
pub(crate) struct Snapshots {
    cache: Mutex<HashMap<SourceId, (u64, Arc<Jpeg>)>>,
    decoding: Semaphore,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            cache: Mutex::new(HashMap::new()),
            decoding: Semaphore::new(MAX_DECODES),
        }
    }
}

impl Snapshots {
    /// A source stopped: its picture goes (the cache holds one per live source).
    pub(crate) fn forget(&self, source: SourceId) {
        lock(&self.cache).remove(&source);
    }

    fn cached(&self, source: SourceId, generation: u64) -> Option<Arc<Jpeg>> {
        lock(&self.cache)
            .get(&source)
            .filter(|(g, _)| *g == generation)
            .map(|(_, j)| j.clone())
    }
}

fn refuse(status: StatusCode, text: impl Into<String>) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], text.into()).into_response()
}

/// 503 with `Retry-After: 1`: a picture may come soon.
fn not_yet(text: impl Into<String>) -> Response {
    let mut r = refuse(StatusCode::SERVICE_UNAVAILABLE, text);
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

pub(crate) async fn snapshot(
    State(hub): State<Arc<Hub>>,
    Path(file): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let Some(id) = file
        .strip_suffix(".jpg")
        .and_then(|s| s.parse::<u64>().ok())
        .map(crate::ids::MountpointId)
    else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no such picture: /snapshot/<mountpoint id>.jpg",
        );
    };
    let credentials: Map<String, Value> = query
        .into_iter()
        .filter(|(k, _)| matches!(k.as_str(), "pin" | "secret" | "apisecret" | "token"))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let video =
        hub.with_gateway(|g, _| g.viewable_video("janus.plugin.streaming", id, &credentials));
    let video = match video {
        Ok(v) => v,
        Err(ViewRefusal::NotFound(text)) => return refuse(StatusCode::NOT_FOUND, text),
        Err(ViewRefusal::Forbidden(text)) => return refuse(StatusCode::FORBIDDEN, text),
        Err(ViewRefusal::NotYet(text)) => return not_yet(text),
    };
    let Some(keyframe) = hub.keyframes.latest(video.source, video.track) else {
        return not_yet(
            "no keyframe yet (the source sends none, or nobody has watched an on-demand camera)",
        );
    };
    let snapshots = &hub.snapshots;
    let jpeg = match snapshots.cached(video.source, keyframe.generation) {
        Some(j) => j,
        None => {
            let Ok(_permit) = snapshots.decoding.acquire().await else {
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
            };
            // Another request may have decoded this keyframe while we waited.
            match snapshots.cached(video.source, keyframe.generation) {
                Some(j) => j,
                None => {
                    let packets = keyframe.packets.clone();
                    let codec = video.codec;
                    let made = tokio::task::spawn_blocking(move || decode(codec, &packets)).await;
                    match made {
                        Ok(Ok(j)) => {
                            let j = Arc::new(j);
                            let mut cache = lock(&snapshots.cache);
                            if cache.len() >= MAX_CACHED {
                                // Sources gone while a picture was being made: start over.
                                cache.clear();
                            }
                            cache.insert(video.source, (keyframe.generation, j.clone()));
                            j
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(mountpoint = %id, error = %e, "snapshot not decoded");
                            return refuse(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("the last keyframe could not be decoded: {e}"),
                            );
                        }
                        Err(e) => {
                            tracing::error!(mountpoint = %id, error = %e, "snapshot decoder panicked");
                            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
                        }
                    }
                }
            }
        }
    };
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        jpeg.data.clone(),
    )
        .into_response()
}

/// The keyframe's packets back into one access unit, decoded and encoded as JPEG.
fn decode(codec: VideoCodec, packets: &[Arc<SourcePacket>]) -> Result<Jpeg, String> {
    let mut depacketizer = cardea_codecs::h26x::Depacketizer::new(codec);
    let mut unit: Option<Vec<u8>> = None;
    for p in packets {
        let h = &p.header;
        depacketizer.push(h.seq, h.timestamp, h.marker, &p.payload, &mut |au, _| {
            if unit.is_none() {
                unit = Some(au.to_vec());
            }
        });
    }
    let unit = unit.ok_or("the keyframe's packets make no access unit")?;
    keyframe_to_jpeg(codec, &unit).map_err(|e| e.to_string())
}
