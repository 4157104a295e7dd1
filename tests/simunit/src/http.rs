//! The one HTTP/1.1 request reader the stand-in servers share.

use std::collections::BTreeMap;
use std::io::BufRead;

/// A request as read off the connection.
pub struct Incoming {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// The next request on the connection; `None` once it is closed or cut
/// short.
pub fn read_request(reader: &mut impl BufRead) -> Option<Incoming> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some(Incoming {
        method,
        target,
        headers,
        body,
    })
}
