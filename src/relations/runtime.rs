//! `container-runtime`: the runtime's socket.

use super::{decoded, malformed, EndpointData, Malformed, CONTAINER_RUNTIME};
use crate::validate;

/// What the container runtime subordinate publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// `unix:///var/run/containerd/containerd.sock`.
    pub socket: String,
    pub runtime: Option<String>,
    pub nvidia: bool,
}

/// The runtime's socket; `None` until published. A socket that is not a
/// `unix://` or `npipe://` URL is malformed.
pub fn container_runtime(data: &EndpointData) -> Result<Option<Runtime>, Malformed> {
    for (unit, bag) in data.bags() {
        let Some(socket) = bag
            .get("socket")
            .map(|v| decoded(v))
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let path = socket
            .strip_prefix("unix://")
            .or_else(|| socket.strip_prefix("npipe://"));
        // A unix socket's path fits in sun_path (108 bytes with its NUL).
        let valid = path.is_some_and(|p| {
            !p.is_empty()
                && p.len() <= 107
                && !p
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"')
        });
        if !valid {
            return Err(malformed(
                CONTAINER_RUNTIME,
                unit,
                "socket",
                format!(
                    "is not a unix:// or npipe:// URL: {}",
                    validate::quoted(&socket)
                ),
            ));
        }
        return Ok(Some(Runtime {
            socket,
            runtime: bag
                .get("runtime")
                .map(|v| decoded(v))
                .filter(|r| !r.is_empty()),
            nvidia: bag
                .get("nvidia_enabled")
                .map(|v| decoded(v))
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }));
    }
    Ok(None)
}
