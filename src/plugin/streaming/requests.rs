//! The plugin's requests: access checks, the synchronous administration (list, info,
//! create, edit, destroy, enable, disable, kick_all), the asynchronous viewer requests
//! (watch, start, pause, stop) and the viewer controls (restart, configure, switch).

use super::*;

impl Streaming {
    /// The handle's viewer state: 460 for a handle the plugin does not know.
    pub(super) fn viewer(&self, handle: HandleId) -> Result<&Viewer, StreamingError> {
        self.viewers
            .get(&handle)
            .ok_or(StreamingError::InvalidState(
                "No session associated with this handle".to_owned(),
            ))
    }

    pub(super) fn mountpoint(&self, id: MountpointId) -> Result<&Mountpoint, StreamingError> {
        self.mountpoints
            .get(&id)
            .ok_or(StreamingError::NoSuchMountpoint(format!(
                "No such mountpoint/stream {id}"
            )))
    }

    /// The mountpoint a viewer may watch: its pin checked when it has one.
    pub(super) fn viewable(
        &self,
        id: MountpointId,
        body: &Map<String, Value>,
    ) -> Result<&Mountpoint, StreamingError> {
        let mp = self.mountpoint(id)?;
        if Self::has_secret(mp, body) {
            return Ok(mp);
        }
        if let Some(pin) = &mp.pin {
            if !crate::secret::given_eq(body.get("pin").and_then(Value::as_str), pin) {
                return Err(StreamingError::Unauthorized(
                    "Unauthorized (wrong pin)".into(),
                ));
            }
        }
        Ok(mp)
    }

    /// Whether the request carries mountpoint `mp`'s secret (it has one, and it matches).
    pub(super) fn has_secret(mp: &Mountpoint, body: &Map<String, Value>) -> bool {
        mp.secret
            .as_deref()
            .is_some_and(|s| crate::secret::given_eq(body.get("secret").and_then(Value::as_str), s))
    }

    /// May administer mountpoint `id`: an administrator, or the mountpoint's secret; with
    /// `open_admin` (Janus's rule) a mountpoint without a secret is anyone's.
    pub(super) fn authorized(
        &mut self,
        caller: Caller,
        id: MountpointId,
        body: &Map<String, Value>,
    ) -> Result<&mut Mountpoint, StreamingError> {
        let mp = self.mountpoint(id)?;
        let open = self.settings.open_admin && mp.secret.is_none();
        if !(self.key_holder(caller, body) || open || Self::has_secret(mp, body)) {
            let why = if mp.secret.is_some() {
                "Unauthorized (wrong secret)"
            } else {
                "Unauthorized (this mountpoint has no secret: administering it needs admin_key)"
            };
            return Err(StreamingError::Unauthorized(why.into()));
        }
        self.mountpoints
            .get_mut(&id)
            .ok_or(StreamingError::NoSuchMountpoint(format!(
                "No such mountpoint/stream {id}"
            )))
    }

    /// Writes (`Some`) or removes (`None`) mountpoint `id` in the configuration file.
    pub(super) fn persist(
        &mut self,
        id: MountpointId,
        config: Option<&crate::config::MountpointConfig>,
    ) -> Result<(), StreamingError> {
        if !self.io.can_save() {
            return Err(StreamingError::Unknown(
                "Can't make it permanent: the gateway runs without a configuration file (--config)"
                    .to_owned(),
            ));
        }
        // The runtime's side logs the write, with the file's path.
        (self.io.save_mountpoint(id, config))
            .map_err(|e| StreamingError::Unknown(format!("Error saving configuration: {e}")))
    }

    pub(super) fn sync_request(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        caller: Caller,
        request: &str,
        body: &Map<String, Value>,
    ) -> Result<Value, StreamingError> {
        let writes = matches!(request, "create" | "edit" | "destroy");
        let permanent = writes && optional_bool(body, "permanent")?.unwrap_or(false);
        if permanent {
            // Rewriting the operator's file takes more than a mountpoint's secret.
            self.require_admin(caller, body)?;
        }
        match request {
            "list" => Ok(json!({"streaming": "list", "list": self
                .mountpoints
                .values()
                .filter(|m| !m.is_private)
                .map(|m| m.list_entry(ctx.now))
                .collect::<Vec<_>>()})),
            "info" => {
                let id = mountpoint_id(body)?;
                let mp = self.mountpoint(id)?;
                let view = if self.key_holder(caller, body) || Self::has_secret(mp, body) {
                    InfoView::Owner
                } else if mp.secret.is_none() && self.settings.open_admin {
                    // Janus shows a mountpoint without a secret whole (pins excepted).
                    InfoView::Owner
                } else {
                    InfoView::Viewer
                };
                Ok(json!({"streaming": "info", "info": mp.info(view, ctx.now)}))
            }
            "create" => self.create(ctx, caller, body),
            "destroy" => {
                let id = mountpoint_id(body)?;
                self.authorized(caller, id, body)?;
                if permanent {
                    self.persist(id, None)?;
                }
                let Some(mp) = self.mountpoints.remove(&id) else {
                    return Err(StreamingError::NoSuchMountpoint(format!(
                        "No such mountpoint/stream {id}"
                    )));
                };
                ctx.stop_source(mp.source);
                for h in &mp.viewers {
                    ctx.push_event(*h, None, event(json!({"status": "stopped"})), None);
                    ctx.close_pc(*h);
                    if let Some(v) = self.viewers.get_mut(h) {
                        v.mountpoint = None;
                        v.state = ViewerState::Idle;
                    }
                }
                if let Some(h) = mp.publisher {
                    ctx.close_pc(h);
                    if let Some(v) = self.viewers.get_mut(&h) {
                        v.publishing = None;
                    }
                }
                tracing::info!(mountpoint = %id, "mountpoint destroyed");
                Ok(json!({"streaming": "destroyed", "destroyed": id}))
            }
            "enable" | "disable" => {
                let id = mountpoint_id(body)?;
                let mp = self.authorized(caller, id, body)?;
                mp.enabled = request == "enable";
                let (enabled, source) = (mp.enabled, mp.source);
                for h in &self.mountpoints[&id].viewers {
                    if let Some(v) = self.viewers.get(h) {
                        v.shared.disabled.store(!enabled, Ordering::Relaxed);
                        if enabled {
                            restart_from_keyframe(ctx, *h, &v.shared, u64::MAX, source);
                        }
                    }
                }
                Ok(json!({"streaming": "ok"}))
            }
            "edit" => self.edit(ctx, caller, body),
            "kick_all" => {
                let id = mountpoint_id(body)?;
                self.authorized(caller, id, body)?;
                let viewers: Vec<HandleId> = self.mountpoint(id)?.viewers.iter().copied().collect();
                for h in viewers {
                    ctx.push_event(h, None, event(json!({"status": "kicked_all"})), None);
                    ctx.close_pc(h);
                }
                Ok(json!({"streaming": "kicked_all"}))
            }
            _ => unreachable!("only called for synchronous requests"),
        }
    }

    /// `edit`: description, metadata, secret, pin and privacy; `permanent` saves them.
    pub(super) fn edit(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        caller: Caller,
        body: &Map<String, Value>,
    ) -> Result<Value, StreamingError> {
        let id = mountpoint_id(body)?;
        let description = optional_str(body, "new_description")?;
        let metadata = optional_str(body, "new_metadata")?;
        let secret = optional_str(body, "new_secret")?;
        let pin = optional_str(body, "new_pin")?;
        let is_private = optional_bool(body, "new_is_private")?;
        let permanent = optional_bool(body, "permanent")?.unwrap_or(false);
        let edited_event = optional_bool(body, "edited_event")?.unwrap_or(false);
        let mp = self.authorized(caller, id, body)?;
        let mut config = mp.config.clone();
        if let Some(d) = &description {
            config.description = Some(d.clone());
        }
        if let Some(m) = &metadata {
            config.metadata = Some(m.clone());
        }
        // Janus: an empty new secret or pin removes it.
        if let Some(s) = &secret {
            config.secret = Some(s.clone()).filter(|s| !s.is_empty());
        }
        if let Some(p) = &pin {
            config.pin = Some(p.clone()).filter(|p| !p.is_empty());
        }
        if let Some(p) = is_private {
            config.is_private = Some(p);
        }
        if permanent {
            self.persist(id, Some(&config))?;
        }
        let mp = self.mountpoints.get_mut(&id).expect("authorized above");
        if let Some(d) = description {
            mp.description = d;
        }
        if metadata.is_some() {
            mp.metadata = metadata;
        }
        mp.secret = config.secret.clone();
        mp.pin = config.pin.clone();
        mp.is_private = config.is_private.unwrap_or(false);
        mp.config = config;
        if edited_event {
            let note = json!({"streaming": "edited", "id": id, "metadata": mp.metadata});
            for h in &mp.viewers {
                ctx.push_event(*h, None, note.clone(), None);
            }
        }
        tracing::info!(mountpoint = %id, permanent, "mountpoint edited");
        Ok(json!({"streaming": "edited", "id": id, "permanent": permanent}))
    }

    pub(super) fn create(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        caller: Caller,
        body: &Map<String, Value>,
    ) -> Result<Value, StreamingError> {
        // Everything that can be checked before anything is started, as `--check-config`.
        check_body(body, &self.settings)?;
        self.require_admin(caller, body)?;
        let from_api = caller != Caller::Configuration;
        let limit = self.settings.max_api_mountpoints;
        if from_api && self.mountpoints.values().filter(|m| m.from_api).count() >= limit {
            return Err(StreamingError::CantCreate(format!(
                "Too many mountpoints created through the API (limit {limit})"
            )));
        }
        let kind = required_str(body, "type")?.to_owned();
        if !matches!(kind.as_str(), "rtp" | "rtsp" | "webrtc" | "demo") {
            return Err(StreamingError::InvalidElement(format!(
                "Unsupported mountpoint type '{kind}' (rtp, rtsp, webrtc or demo, for now)"
            )));
        }
        let id = match body.get("id") {
            None | Some(Value::Null) => loop {
                let id = MountpointId(u64::from(rand::random::<u32>()));
                if id.0 > 0 && !self.mountpoints.contains_key(&id) {
                    break id;
                }
            },
            Some(v) => {
                let id = (v.as_u64().filter(|id| *id > 0).map(MountpointId)).ok_or(
                    StreamingError::InvalidElement(
                        "Invalid element (id should be a positive integer)".to_owned(),
                    ),
                )?;
                if self.mountpoints.contains_key(&id) {
                    return Err(StreamingError::CantCreate(format!(
                        "A stream with the provided ID {id} already exists"
                    )));
                }
                id
            }
        };
        let permanent = optional_bool(body, "permanent")?.unwrap_or(false);
        // What `permanent` writes: the request's own fields, each one known.
        let mut fields = body.clone();
        for k in ["request", "admin_key", "permanent"] {
            fields.remove(k);
        }
        fields.retain(|_, v| !v.is_null());
        fields.insert("id".into(), json!(id));
        let config: crate::config::MountpointConfig =
            match serde_json::from_value(Value::Object(fields)) {
                Ok(c) => c,
                Err(e) if permanent => {
                    return Err(StreamingError::CantCreate(format!(
                        "Can't make it permanent: {e}"
                    )))
                }
                Err(_) => crate::config::MountpointConfig {
                    id: id.0,
                    kind: kind.clone(),
                    ..Default::default()
                },
            };
        let name = optional_str(body, "name")?.unwrap_or_else(|| id.to_string());
        let description = optional_str(body, "description")?.unwrap_or_else(|| name.clone());
        let counters = Arc::new(SourceCounters::default());
        let viewer_count = Arc::new(AtomicUsize::new(0));
        let mut rtsp = None;
        let mut ondemand = false;
        let (media, source) = if kind == "demo" {
            (
                Mountpoint::demo_media(),
                ctx.start_demo_source(viewer_count.clone(), counters.clone()),
            )
        } else if kind == "webrtc" {
            // Fed by a publisher (WHIP) when one comes: no ports, no task until then.
            let media = mountpoint::plan_media(body)?
                .media
                .into_iter()
                .map(|p| mountpoint::MountMedia {
                    port: 0,
                    rtcp_port: None,
                    ..p.media
                })
                .collect();
            (media, ctx.allocate_source())
        } else if kind == "rtsp" {
            let (media, mut spec) = Mountpoint::parse_rtsp(body, &self.settings.rtsp_allow)?;
            spec.viewers = viewer_count.clone();
            spec.counters = counters.clone();
            ondemand = spec.ondemand;
            let status = Arc::new(crate::ingest::rtsp::RtspStatus::default());
            rtsp = Some(status.clone());
            (media, ctx.start_rtsp_source(spec, status))
        } else {
            let (media, ports) =
                Mountpoint::parse_media(body, self.settings.rtp_bind_ip, self.io.as_mut())?;
            (media, ctx.start_rtp_source(ports, counters.clone()))
        };
        let discovering = rtsp.is_some() && media.is_empty();
        let mp = Mountpoint {
            id,
            from_api,
            name: name.clone(),
            description,
            metadata: optional_str(body, "metadata")?,
            secret: optional_str(body, "secret")?,
            pin: optional_str(body, "pin")?,
            is_private: optional_bool(body, "is_private")?.unwrap_or(false),
            enabled: true,
            kind: kind.clone(),
            ondemand,
            config,
            media,
            source,
            counters,
            viewers: Default::default(),
            viewer_count,
            discovering,
            rtsp,
            unoffered: Vec::new(),
            publisher: None,
        };
        if permanent {
            if let Err(e) = self.persist(id, Some(&mp.config)) {
                ctx.stop_source(mp.source);
                return Err(e);
            }
        }
        tracing::info!(mountpoint = %id, %name, %kind, permanent, ports = ?mp.media.iter().map(|m| m.port).collect::<Vec<_>>(), "mountpoint created");
        // Janus answers `created`; the API notes show `create`: both carry the name.
        let reply = json!({"streaming": "created", "created": name, "create": name,
            "permanent": permanent, "stream": mp.created()});
        self.mountpoints.insert(id, mp);
        Ok(reply)
    }

    /// The asynchronous requests; `Ok` is the event to push (with an optional JSEP).
    pub(super) fn async_request(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        request: &str,
        msg: &PluginMessage,
    ) -> Result<(Value, Option<Value>), StreamingError> {
        let body = &msg.body;
        let viewer = self.viewer(handle)?;
        match request {
            "watch" => {
                if viewer.state != ViewerState::Idle {
                    return Err(StreamingError::InvalidState(
                        "Already watching a stream".into(),
                    ));
                }
                let id = mountpoint_id(body)?;
                let mp = self.viewable(id, body)?;
                if mp.discovering {
                    return Err(StreamingError::InvalidState(
                        "No media yet: the camera has not been reached (see its info)".into(),
                    ));
                }
                let wanted: Option<Vec<&str>> = body
                    .get("media")
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(Value::as_str).collect());
                let chosen: Vec<usize> = (0..mp.media.len())
                    .filter(|i| {
                        wanted
                            .as_ref()
                            .is_none_or(|w| w.contains(&mp.media[*i].mid.as_str()))
                    })
                    .collect();
                if chosen.is_empty() {
                    return Err(StreamingError::InvalidElement(
                        "None of the requested media exist".into(),
                    ));
                }
                // One payload type per distinct codec: browsers answer a BUNDLE with
                // one mapping per payload type (two H.264 tracks share one).
                let mut tracks: Vec<crate::media::webrtc::OfferTrack> = Vec::new();
                for i in &chosen {
                    let mut t = mp.media[*i].offer_track(id);
                    let same = tracks.iter().find(|o| {
                        (o.codec, o.clock_rate, o.channels, o.format)
                            == (t.codec, t.clock_rate, t.channels, t.format)
                    });
                    if let Some(same) = same {
                        t.pt = same.pt;
                    } else if tracks.iter().any(|o| o.pt == t.pt) {
                        let free = (96..128u8).find(|p| {
                            !tracks.iter().any(|o| o.pt == *p)
                                && !mp.media.iter().any(|m| m.pt == *p)
                        });
                        t.pt = free.ok_or(StreamingError::InvalidState(
                            "No payload type left for this mountpoint's media".to_owned(),
                        ))?;
                    }
                    tracks.push(t);
                }
                if let Some(offer) = msg.jsep.as_ref().filter(|j| j.kind == JsepKind::Offer) {
                    return self.watch_offer(ctx, handle, id, &chosen, &tracks, offer);
                }
                let (jsep, mids) = ctx
                    .create_offer(handle, &tracks)
                    .map_err(|e| StreamingError::InvalidState(e.reason))?;
                let mut by_track = vec![None; mp.media.len()];
                let mut pts = vec![0; mp.media.len()];
                for ((i, mid), t) in chosen.iter().zip(mids).zip(&tracks) {
                    by_track[*i] = Some(mid);
                    pts[*i] = t.pt;
                }
                self.seat(handle, id, by_track, pts, ViewerState::Offered);
                Ok((event(json!({"status": "preparing"})), Some(jsep.to_json())))
            }
            "start" => match (viewer.state, &msg.jsep) {
                (ViewerState::Streaming | ViewerState::Paused, Some(jsep))
                    if viewer.restart == Some(IceRestart::Answering) =>
                {
                    ctx.accept_restart_answer(handle, jsep)
                        .map_err(|e| StreamingError::InvalidSdp(e.reason))?;
                    self.viewers
                        .get_mut(&handle)
                        .expect("checked above")
                        .restart = None;
                    Ok((event(json!({"status": "starting"})), None))
                }
                (ViewerState::Offered, Some(jsep)) if jsep.kind == JsepKind::Answer => {
                    let id = viewer
                        .mountpoint
                        .expect("offered viewers have a mountpoint");
                    let mp = self.mountpoint(id)?;
                    let tracks = viewer
                        .mids
                        .iter()
                        .zip(&mp.media)
                        .zip(&viewer.pts)
                        .map(|((mid, m), pt)| {
                            let video = m.codec.kind == str0m::media::MediaKind::Video;
                            mid.map(|mid| ViewerTrack::new(mid, *pt, video))
                        })
                        .collect();
                    let media = ViewerMedia::new(tracks, viewer.shared.clone());
                    viewer.shared.disabled.store(!mp.enabled, Ordering::Relaxed);
                    let media: Box<dyn MediaHandler> = Box::new(media);
                    ctx.accept_answer(handle, jsep, media, vec![mp.source])
                        .map_err(|e| StreamingError::InvalidSdp(e.reason))?;
                    self.viewers.get_mut(&handle).expect("checked above").state =
                        ViewerState::Streaming;
                    Ok((event(json!({"status": "starting"})), None))
                }
                (ViewerState::Offered, _) => Err(StreamingError::MissingElement(
                    "Missing mandatory element (answer)".into(),
                )),
                (ViewerState::Paused, _) => {
                    viewer.shared.paused.store(false, Ordering::Relaxed);
                    // As Janus: a PeerConnection already up resumes as `started`.
                    let status = if viewer.started {
                        "started"
                    } else {
                        "starting"
                    };
                    self.viewers.get_mut(&handle).expect("checked above").state =
                        ViewerState::Streaming;
                    Ok((event(json!({"status": status})), None))
                }
                _ => Err(StreamingError::InvalidState("Not watching anything".into())),
            },
            "pause" => {
                if viewer.streaming().is_none() {
                    return Err(StreamingError::InvalidState("Not streaming".into()));
                }
                viewer.shared.paused.store(true, Ordering::Relaxed);
                self.viewers.get_mut(&handle).expect("checked above").state = ViewerState::Paused;
                Ok((event(json!({"status": "pausing"})), None))
            }
            "configure" => self.configure(ctx, handle, body),
            "switch" => self.switch(ctx, handle, body),
            "publish" => self.publish(ctx, handle, msg),
            "stop" => {
                if viewer.state == ViewerState::Idle {
                    return Ok((event(json!({"status": "idle"})), None));
                }
                ctx.close_pc(handle);
                Ok((event(json!({"status": "stopping"})), None))
            }
            _ => unreachable!("only called for asynchronous requests"),
        }
    }

    /// Makes `handle` a viewer of mountpoint `id` (both exist), its tracks on `mids`
    /// with payload types `pts` (per mountpoint track).
    pub(super) fn seat(
        &mut self,
        handle: HandleId,
        id: MountpointId,
        mids: Vec<Option<Mid>>,
        pts: Vec<u8>,
        state: ViewerState,
    ) {
        let v = self
            .viewers
            .get_mut(&handle)
            .expect("checked by the caller");
        v.mountpoint = Some(id);
        v.mids = mids;
        v.pts = pts;
        v.state = state;
        self.mountpoints
            .get_mut(&id)
            .expect("checked by the caller")
            .add_viewer(handle);
    }

    /// `watch` with `restart: true` on the mountpoint being watched: an ICE restart.
    /// The offer comes from the media engine (see `restart_offer`) as the answer to
    /// this request: `updating` with a JSEP offer carrying `restart: true`.
    pub(super) fn restart(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        body: &Map<String, Value>,
        transaction: &str,
    ) -> Result<(), StreamingError> {
        let viewer = self.viewer(handle)?;
        let Some(current) = viewer.streaming() else {
            return Err(StreamingError::InvalidState(
                "Can't restart: not streaming".into(),
            ));
        };
        if body.get("id").is_some() && mountpoint_id(body)? != current {
            return Err(StreamingError::InvalidState(
                "Can't restart: watching another mountpoint (use switch)".into(),
            ));
        }
        if !ctx.restart_ice(handle) {
            return Err(StreamingError::InvalidState(
                "Can't restart: no PeerConnection".into(),
            ));
        }
        self.viewers
            .get_mut(&handle)
            .expect("checked above")
            .restart = Some(IceRestart::Offering(transaction.to_owned()));
        Ok(())
    }

    /// `configure`: `streams: [{mid, send}]` stops or resumes sending single tracks.
    pub(super) fn configure(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        body: &Map<String, Value>,
    ) -> Result<(Value, Option<Value>), StreamingError> {
        let viewer = &self.viewers[&handle];
        let Some(id) = viewer
            .mountpoint
            .filter(|_| viewer.state != ViewerState::Idle)
        else {
            return Err(StreamingError::InvalidState("Not watching anything".into()));
        };
        let mp = self.mountpoint(id)?;
        let streams = match body.get("streams") {
            None => &Vec::new(),
            Some(Value::Array(l)) => l,
            Some(_) => {
                return Err(StreamingError::InvalidElement(
                    "Invalid element (streams should be an array)".into(),
                ))
            }
        };
        let (mut mute, mut unmute) = (0u64, 0u64);
        for s in streams {
            let s = s.as_object().ok_or(StreamingError::InvalidElement(
                "Invalid element (streams items should be objects)".to_owned(),
            ))?;
            let mid = required_str(s, "mid")?;
            let track = (0..mp.media.len())
                .find(|i| {
                    mp.media[*i].mid == mid && viewer.mids.get(*i).is_some_and(Option::is_some)
                })
                .ok_or(StreamingError::InvalidElement(format!(
                    "Invalid element (no such mid '{mid}')"
                )))?;
            match optional_bool(s, "send")? {
                Some(true) => unmute |= track_bit(track),
                Some(false) => mute |= track_bit(track),
                None => {}
            }
        }
        let before = viewer.shared.muted.fetch_or(mute, Ordering::Relaxed) | mute;
        let resumed = before & unmute;
        viewer.shared.muted.fetch_and(!unmute, Ordering::Relaxed);
        if resumed != 0 {
            restart_from_keyframe(ctx, handle, &viewer.shared, resumed, mp.source);
        }
        Ok((event(json!({"event": "configured"})), None))
    }

    /// `switch`: the viewer goes on, in the same PeerConnection, with another
    /// mountpoint whose media have the same layout (same codecs in the same order).
    pub(super) fn switch(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        body: &Map<String, Value>,
    ) -> Result<(Value, Option<Value>), StreamingError> {
        let viewer = &self.viewers[&handle];
        let Some(from) = viewer.streaming() else {
            return Err(StreamingError::InvalidState(
                "Can't switch: not streaming".into(),
            ));
        };
        let id = mountpoint_id(body)?;
        let target = self.viewable(id, body)?;
        let current = self.mountpoint(from)?;
        let same_layout = viewer.mids.iter().enumerate().all(|(i, mid)| {
            mid.is_none()
                || target
                    .media
                    .get(i)
                    .is_some_and(|t| t.codec.codec == current.media[i].codec.codec)
        });
        if !same_layout {
            return Err(StreamingError::CantSwitch(format!(
                "Can't switch to mountpoint {id}: its media differ from mountpoint {from}'s"
            )));
        }
        let (source, enabled) = (target.source, target.enabled);
        viewer.shared.disabled.store(!enabled, Ordering::Relaxed);
        restart_from_keyframe(ctx, handle, &viewer.shared, u64::MAX, source);
        if from != id {
            if let Some(mp) = self.mountpoints.get_mut(&from) {
                mp.remove_viewer(handle);
            }
            if let Some(mp) = self.mountpoints.get_mut(&id) {
                mp.add_viewer(handle);
            }
            self.viewers
                .get_mut(&handle)
                .expect("checked above")
                .mountpoint = Some(id);
        }
        tracing::debug!(%handle, %from, to = %id, "viewer switched");
        Ok((event(json!({"switched": "ok", "id": id})), None))
    }

    pub(super) fn leave(&mut self, handle: HandleId) -> bool {
        let Some(v) = self.viewers.get_mut(&handle) else {
            return false;
        };
        if let Some(id) = v.publishing.take() {
            if let Some(mp) = self.mountpoints.get_mut(&id) {
                if mp.publisher == Some(handle) {
                    mp.publisher = None;
                    tracing::info!(mountpoint = %id, %handle, "publisher left; viewers stay");
                }
            }
            return true;
        }
        let was = v.mountpoint.take();
        v.state = ViewerState::Idle;
        v.mids.clear();
        v.shared.paused.store(false, Ordering::Relaxed);
        v.shared.muted.store(0, Ordering::Relaxed);
        v.restart = None;
        v.started = false;
        v.shared.rekey.store(0, Ordering::Relaxed);
        if let Some(id) = was {
            if let Some(mp) = self.mountpoints.get_mut(&id) {
                mp.remove_viewer(handle);
            }
        }
        was.is_some()
    }
}
