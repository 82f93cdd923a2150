//! The host's side of the streaming plugin's [`StreamingIo`]: real UDP sockets and
//! the configuration file the gateway was started with.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;

use super::config_file;
use crate::config::MountpointConfig;
use crate::ids::MountpointId;
use crate::plugin::streaming::io::StreamingIo;

/// Sockets from the OS; `permanent: true` rewrites `config_path` (none: refused).
#[derive(Debug, Clone, Default)]
pub struct HostIo {
    config_path: Option<PathBuf>,
}

impl HostIo {
    /// `config_path`: the file given with `--config`, if any.
    pub fn new(config_path: Option<PathBuf>) -> HostIo {
        HostIo { config_path }
    }
}

impl StreamingIo for HostIo {
    fn bind_udp(&mut self, addr: SocketAddr) -> std::io::Result<UdpSocket> {
        UdpSocket::bind(addr)
    }

    fn can_save(&self) -> bool {
        self.config_path.is_some()
    }

    fn save_mountpoint(
        &mut self,
        id: MountpointId,
        config: Option<&MountpointConfig>,
    ) -> Result<(), String> {
        let path = self.config_path.as_ref().ok_or("no configuration file")?;
        config_file::rewrite(path, id.0, config)?;
        tracing::info!(mountpoint = %id, path = %path.display(), saved = config.is_some(), "configuration file rewritten");
        Ok(())
    }
}
