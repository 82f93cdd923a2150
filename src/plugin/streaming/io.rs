//! What the streaming plugin needs from outside itself: UDP ports for RTP
//! mountpoints, and the configuration file that `permanent: true` rewrites. The
//! plugin does no I/O of its own; the runtime hands it a [`StreamingIo`] (the host's
//! sockets and file), tests a fake one. A port is bound and the file written before
//! the request is answered, as Janus does: the answer says whether it worked, and a
//! change the file could not take is not made.

use std::net::{SocketAddr, UdpSocket};

use crate::config::MountpointConfig;
use crate::ids::MountpointId;

/// The plugin's outside world. See the module doc.
pub trait StreamingIo: Send {
    /// A UDP socket bound to `addr` (port 0: any free port).
    fn bind_udp(&mut self, addr: SocketAddr) -> std::io::Result<UdpSocket>;

    /// Whether there is a configuration file for `permanent: true` to update.
    fn can_save(&self) -> bool;

    /// Sets mountpoint `id` in the configuration file to `config`, or removes it
    /// (`None`). The error says what failed, without secrets.
    fn save_mountpoint(
        &mut self,
        id: MountpointId,
        config: Option<&MountpointConfig>,
    ) -> Result<(), String>;
}
