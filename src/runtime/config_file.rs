//! `permanent: true`: mountpoints written into (or removed from) the configuration
//! file as `[[streaming.mountpoints]]` tables. The rest of the file, comments
//! included, is kept as it was (toml_edit), and the file is replaced atomically.

use std::path::Path;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

use crate::config::MountpointConfig;

/// Sets mountpoint `id` in the file at `path` to `config`, or removes it (`None`).
pub(super) fn rewrite(
    path: &Path,
    id: u64,
    config: Option<&MountpointConfig>,
) -> Result<(), String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("parsing {}: {e}", path.display()))?;
    let streaming = doc
        .entry("streaming")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or("[streaming] is not a table")?;
    let list = streaming
        .entry("mountpoints")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or("streaming.mountpoints is not an array of tables")?;
    let at = list
        .iter()
        .position(|t| t.get("id").and_then(Item::as_integer) == Some(id as i64));
    let table = match config {
        Some(c) => {
            let text = toml::to_string(c).map_err(|e| format!("mountpoint {id}: {e}"))?;
            let mut t = text
                .parse::<DocumentMut>()
                .map_err(|e| format!("mountpoint {id}: {e}"))?
                .as_table()
                .clone();
            t.set_implicit(false);
            // Media as one inline array, as the shipped file writes them.
            if let Some(Item::ArrayOfTables(aot)) = t.remove("media") {
                let mut arr = toml_edit::Array::new();
                for m in aot.iter() {
                    arr.push(m.clone().into_inline_table());
                    if let Some(last) = arr.iter_mut().last() {
                        last.decor_mut().set_prefix("\n  ");
                    }
                }
                arr.set_trailing("\n");
                arr.set_trailing_comma(true);
                t.insert("media", toml_edit::value(arr));
            }
            Some(t)
        }
        None => None,
    };
    match (at, table) {
        (Some(i), Some(t)) => {
            if let Some(slot) = list.get_mut(i) {
                *slot = t;
            }
        }
        (None, Some(t)) => list.push(t),
        (Some(i), None) => list.remove(i),
        (None, None) => {}
    }
    replace(path, doc.to_string().as_bytes())
}

/// Replaces the file at `path` with `bytes` atomically: a new file beside it (never an
/// existing one, so a link planted there is not followed) with the old file's mode and
/// owner, synced, renamed over the old one, and the directory synced. A `path` that is
/// a symbolic link is refused: renaming over it would swap the operator's link for a
/// plain file.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let shown = path.display();
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("reading {shown}: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{shown} is a symbolic link: point --config at the file itself"
        ));
    }
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp); // a leftover of a crash, or a planted link
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    let written = (|| {
        file.set_permissions(meta.permissions())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // Only root may give a file away; others keep their own ownership.
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("writing {}: {e}", tmp.display()));
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("replacing {shown}: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, MountMediaConfig};

    #[test]
    fn saved_mountpoints_load_back_and_comments_stay() {
        let dir = std::env::temp_dir().join(format!("cardea-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cardea.toml");
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/cardea.toml"))
                .unwrap();
        std::fs::write(&path, &shipped).unwrap();
        let rtp = MountpointConfig {
            id: 7,
            kind: "rtp".into(),
            description: Some("lab feed".into()),
            secret: Some("adminpwd".into()),
            media: vec![
                MountMediaConfig {
                    kind: "video".into(),
                    mid: "v".into(),
                    port: Some(5004),
                    rtcpport: Some(5005),
                    pt: Some(96),
                    codec: "h264".into(),
                    fmtp: Some("packetization-mode=1".into()),
                    ..Default::default()
                },
                MountMediaConfig {
                    kind: "audio".into(),
                    mid: "a".into(),
                    port: Some(5002),
                    pt: Some(111),
                    codec: "opus".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let cam = MountpointConfig {
            id: 8,
            kind: "rtsp".into(),
            url: Some("rtsp://127.0.0.1:8554/cam".into()),
            ondemand: Some(true),
            ..Default::default()
        };
        rewrite(&path, 7, Some(&rtp)).unwrap();
        rewrite(&path, 8, Some(&cam)).unwrap();
        let loaded = Config::load(&path).unwrap();
        let ids: Vec<u64> = loaded.streaming.mountpoints.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![1, 7, 8]);
        assert_eq!(loaded.streaming.mountpoints[1], rtp);
        assert_eq!(loaded.streaming.mountpoints[2], cam);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# Mountpoints created at start"),
            "comments kept:\n{text}"
        );
        // Edited in place, then removed.
        let mut edited = rtp.clone();
        edited.description = Some("renamed".into());
        rewrite(&path, 7, Some(&edited)).unwrap();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded.streaming.mountpoints[1], edited);
        rewrite(&path, 7, None).unwrap();
        rewrite(&path, 8, None).unwrap();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(
            loaded,
            Config::default(),
            "back to the shipped file:\n{}",
            std::fs::read_to_string(&path).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_file_keeps_its_mode_and_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cardea-persist-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cardea.toml");
        std::fs::write(&file, "[general]\napi_secret = \"s\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = MountpointConfig {
            id: 9,
            kind: "demo".into(),
            ..Default::default()
        };
        rewrite(&file, 9, Some(&config)).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "secrets stay unreadable to others");
        assert!(std::fs::read_to_string(&file).unwrap().contains("id = 9"));
        assert!(!dir.join("cardea.toml.tmp").exists());
        // A link to the file: refused, the link and its target untouched.
        let link = dir.join("link.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let before = std::fs::read_to_string(&file).unwrap();
        let e = rewrite(&link, 9, None).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
