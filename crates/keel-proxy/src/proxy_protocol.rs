//! The PROXY protocol header (v1 text and v2 binary, HAProxy's specification) that a
//! load balancer in front of Keel writes first on each connection of a listener with
//! `proxy_protocol = true`: it names the client the balancer accepted. Keel reads
//! exactly the header's bytes (the request that follows is left in the socket), within
//! the listener's `header_read_timeout`, and the named source address becomes the
//! connection's client address. A connection without a valid header is closed: such
//! a listener only takes connections from the balancer. `LOCAL` (v2) and `UNKNOWN`
//! (v1), a balancer's own health checks, keep the TCP peer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line, CRLF included (107 bytes, per the specification).
const V1_MAX: usize = 107;

/// Why a connection's PROXY header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Not a PROXY header, or a malformed one.
    Malformed,
    /// The socket closed or failed first.
    Io,
    /// The header did not arrive within the listener's `header_read_timeout`.
    Timeout,
}

/// Reads the connection's PROXY header: the client it names, or `None` for a
/// balancer's own connection (`LOCAL`, `UNKNOWN`, or an address family Keel does not
/// route, such as a Unix socket).
pub(crate) async fn read_header(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<Option<SocketAddr>, HeaderError> {
    match tokio::time::timeout_at(deadline, read(stream)).await {
        Ok(result) => result,
        Err(_) => Err(HeaderError::Timeout),
    }
}

async fn read(stream: &mut TcpStream) -> Result<Option<SocketAddr>, HeaderError> {
    let mut start = [0u8; 6];
    stream
        .read_exact(&mut start)
        .await
        .map_err(|_| HeaderError::Io)?;
    if &start == b"PROXY " {
        return read_v1(stream).await;
    }
    if start[..] != V2_SIGNATURE[..6] {
        return Err(HeaderError::Malformed);
    }
    let mut rest = [0u8; 10];
    stream
        .read_exact(&mut rest)
        .await
        .map_err(|_| HeaderError::Io)?;
    if rest[..6] != V2_SIGNATURE[6..] {
        return Err(HeaderError::Malformed);
    }
    let (version_command, family) = (rest[6], rest[7]);
    let length = usize::from(u16::from_be_bytes([rest[8], rest[9]]));
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|_| HeaderError::Io)?;
    parse_v2(version_command, family, &body)
}

/// Reads the rest of a v1 line after `PROXY `: what is read before its CRLF is all
/// header, so the reads never take a byte of the request.
async fn read_v1(stream: &mut TcpStream) -> Result<Option<SocketAddr>, HeaderError> {
    let mut line: Vec<u8> = b"PROXY ".to_vec();
    let mut peeked = [0u8; V1_MAX];
    loop {
        let seen = stream
            .peek(&mut peeked[..V1_MAX - line.len()])
            .await
            .map_err(|_| HeaderError::Io)?;
        if seen == 0 {
            return Err(HeaderError::Io);
        }
        let take = match peeked[..seen].windows(2).position(|w| w == b"\r\n") {
            Some(at) => at + 2,
            None => seen,
        };
        let mut chunk = vec![0u8; take];
        stream
            .read_exact(&mut chunk)
            .await
            .map_err(|_| HeaderError::Io)?;
        line.extend_from_slice(&chunk);
        if line.ends_with(b"\r\n") {
            return parse_v1(&line);
        }
        if line.len() >= V1_MAX {
            return Err(HeaderError::Malformed);
        }
    }
}

/// `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`, or `PROXY UNKNOWN ...\r\n`.
fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, HeaderError> {
    let text = std::str::from_utf8(line).map_err(|_| HeaderError::Malformed)?;
    let text = text.strip_suffix("\r\n").ok_or(HeaderError::Malformed)?;
    let mut fields = text.split(' ');
    if fields.next() != Some("PROXY") {
        return Err(HeaderError::Malformed);
    }
    let family = fields.next().ok_or(HeaderError::Malformed)?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let mut next = || fields.next().ok_or(HeaderError::Malformed);
    let (source, _destination, port, _) = (next()?, next()?, next()?, next()?);
    let source: IpAddr = source.parse().map_err(|_| HeaderError::Malformed)?;
    let port: u16 = port.parse().map_err(|_| HeaderError::Malformed)?;
    match (family, source) {
        ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => {
            Ok(Some(SocketAddr::new(source, port)))
        }
        _ => Err(HeaderError::Malformed),
    }
}

/// The v2 header after its 16 fixed bytes.
fn parse_v2(
    version_command: u8,
    family: u8,
    body: &[u8],
) -> Result<Option<SocketAddr>, HeaderError> {
    if version_command >> 4 != 2 {
        return Err(HeaderError::Malformed);
    }
    match version_command & 0x0f {
        0 => return Ok(None),
        1 => {}
        _ => return Err(HeaderError::Malformed),
    }
    match family >> 4 {
        1 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        1 | 2 => Err(HeaderError::Malformed),
        // AF_UNSPEC or AF_UNIX: no address Keel's policies could judge.
        _ => Ok(None),
    }
}

impl crate::dataplane::DataPlane {
    /// True when the active config's listener at `local` has `proxy_protocol = true`
    /// (a listener bound to an unspecified address matches by port). Read when a
    /// connection arrives, so it follows the generation like the rest of the config.
    pub(crate) fn expects_proxy_header(&self, local: Option<SocketAddr>) -> bool {
        let Some(local) = local else {
            return false;
        };
        let active = self.load();
        let Some(active) = active.as_ref() else {
            return false;
        };
        active.primary.config.listeners.values().any(|listener| {
            let addr = listener.addr.value;
            listener.proxy_protocol
                && addr.port() == local.port()
                && (addr.ip().is_unspecified() || addr.ip() == local.ip())
        })
    }
}

/// Reads the PROXY header of a new connection and makes its source the connection's
/// client address; false when the connection must be closed.
pub(crate) async fn accept(
    stream: &mut TcpStream,
    conn: &mut std::sync::Arc<crate::request::ConnInfo>,
    deadline: Instant,
) -> bool {
    match read_header(stream, deadline).await {
        Ok(None) => true,
        Ok(Some(source)) => {
            // The connection's info is not shared yet: no request has been read.
            let Some(info) = std::sync::Arc::get_mut(conn) else {
                return false;
            };
            match http::HeaderValue::from_str(&source.ip().to_string()) {
                Ok(value) => {
                    info.peer_header = value;
                    true
                }
                Err(_) => false,
            }
        }
        Err(error) => {
            tracing::debug!(?error, "connection closed: no valid PROXY protocol header");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines_name_their_source() {
        let parsed = parse_v1(b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n");
        assert_eq!(parsed, Ok(Some("192.0.2.1:56324".parse().expect("addr"))));
        let v6 = parse_v1(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n");
        assert_eq!(v6, Ok(Some("[2001:db8::1]:1".parse().expect("addr"))));
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n"), Ok(None));
        for bad in [
            &b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.1 99999 443\r\n",
            b"PROXY TCP4 192.0.2.1\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2",
        ] {
            assert_eq!(parse_v1(bad), Err(HeaderError::Malformed));
        }
    }

    #[test]
    fn v2_headers_name_their_source() {
        let mut body = vec![192, 0, 2, 9, 10, 0, 0, 1];
        body.extend_from_slice(&4242u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            parse_v2(0x21, 0x11, &body),
            Ok(Some("192.0.2.9:4242".parse().expect("addr")))
        );
        assert_eq!(parse_v2(0x20, 0x00, &[]), Ok(None), "LOCAL");
        assert_eq!(
            parse_v2(0x21, 0x11, &body[..6]),
            Err(HeaderError::Malformed)
        );
        assert_eq!(parse_v2(0x11, 0x11, &body), Err(HeaderError::Malformed));
    }
}
