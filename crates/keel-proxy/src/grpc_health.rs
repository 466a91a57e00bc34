//! The wire format of the standard gRPC health check (`grpc.health.v1.Health/Check`):
//! the request a probe sends and how its answer is read.
//!
//! Both messages have one field, so they are written and read here rather than with a
//! protobuf code generator: `HealthCheckRequest { string service = 1; }` and
//! `HealthCheckResponse { ServingStatus status = 1; }`, each in one gRPC frame
//! (a compressed flag byte, a 4-byte big-endian length, the message).

use bytes::{BufMut, Bytes, BytesMut};

/// The method a gRPC health probe calls.
pub const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// Longest service name sent in a probe (1,024 bytes; a name is a config value, but a
/// probe must stay one small frame).
const MAX_SERVICE_NAME: usize = 1024;
/// Protobuf key of field 1 with wire type 2 (length-delimited): `service`.
const SERVICE_KEY: u8 = 0x0a;
/// Protobuf key of field 1 with wire type 0 (varint): `status`.
const STATUS_KEY: u8 = 0x08;
/// Bytes of a gRPC frame header.
const FRAME_HEADER: usize = 5;

/// A `ServingStatus` of `grpc.health.v1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServingStatus {
    /// 0: the server does not know.
    Unknown,
    /// 1: serving.
    Serving,
    /// 2: not serving.
    NotServing,
    /// 3: the service name is unknown to the server (`Watch` only, but read anyway).
    ServiceUnknown,
    /// Any other value.
    Other(u64),
}

impl std::fmt::Display for ServingStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServingStatus::Unknown => f.write_str("UNKNOWN"),
            ServingStatus::Serving => f.write_str("SERVING"),
            ServingStatus::NotServing => f.write_str("NOT_SERVING"),
            ServingStatus::ServiceUnknown => f.write_str("SERVICE_UNKNOWN"),
            ServingStatus::Other(n) => write!(f, "status {n}"),
        }
    }
}

/// The request body: one uncompressed frame holding `HealthCheckRequest { service }`.
pub fn request_body(service: &str) -> Bytes {
    let mut name = service.as_bytes();
    if name.len() > MAX_SERVICE_NAME {
        name = &name[..MAX_SERVICE_NAME];
    }
    let mut message = BytesMut::with_capacity(name.len() + 3);
    if !name.is_empty() {
        message.put_u8(SERVICE_KEY);
        put_varint(&mut message, name.len() as u64);
        message.put_slice(name);
    }
    let mut frame = BytesMut::with_capacity(FRAME_HEADER + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    frame.freeze()
}

/// The serving status in a response body (one frame), or why it cannot be read.
pub fn read_response(body: &[u8]) -> Result<ServingStatus, String> {
    let Some((header, rest)) = body.split_at_checked(FRAME_HEADER) else {
        return Err("no health message in the answer".into());
    };
    if header[0] != 0 {
        return Err("the health message is compressed (not asked for)".into());
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let Some(mut message) = rest.get(..length) else {
        return Err("the health message is cut short".into());
    };
    // Proto3 leaves a field at its default (UNKNOWN) out; other fields are skipped.
    let mut status = ServingStatus::Unknown;
    while let Some((&key, tail)) = message.split_first() {
        message = tail;
        let value_type = key & 0x07;
        if key & 0x80 != 0 {
            return Err("field numbers past 15 are not part of a health answer".into());
        }
        match value_type {
            0 => {
                let (value, tail) = varint(message)?;
                message = tail;
                if key == STATUS_KEY {
                    status = match value {
                        0 => ServingStatus::Unknown,
                        1 => ServingStatus::Serving,
                        2 => ServingStatus::NotServing,
                        3 => ServingStatus::ServiceUnknown,
                        n => ServingStatus::Other(n),
                    };
                }
            }
            2 => {
                let (len, tail) = varint(message)?;
                let len = usize::try_from(len).map_err(|_| "a field is too long".to_string())?;
                message = tail
                    .get(len..)
                    .ok_or_else(|| "a field is cut short".to_string())?;
            }
            other => return Err(format!("unexpected protobuf wire type {other}")),
        }
    }
    Ok(status)
}

fn put_varint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn varint(bytes: &[u8]) -> Result<(u64, &[u8]), String> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err("a malformed varint in the health message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_frame() {
        assert_eq!(&request_body("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &request_body("ab")[..],
            &[0, 0, 0, 0, 4, SERVICE_KEY, 2, b'a', b'b']
        );
        let long = "x".repeat(200);
        let body = request_body(&long);
        assert_eq!(&body[5..8], &[SERVICE_KEY, 0xc8, 0x01]);
    }

    #[test]
    fn responses_are_read() {
        assert_eq!(
            read_response(&[0, 0, 0, 0, 2, STATUS_KEY, 1]),
            Ok(ServingStatus::Serving)
        );
        assert_eq!(
            read_response(&[0, 0, 0, 0, 2, STATUS_KEY, 2]),
            Ok(ServingStatus::NotServing)
        );
        assert_eq!(read_response(&[0, 0, 0, 0, 0]), Ok(ServingStatus::Unknown));
        assert!(read_response(&[0, 0, 0]).is_err());
        assert!(read_response(&[0, 0, 0, 0, 9, STATUS_KEY, 1]).is_err());
        assert!(read_response(&[1, 0, 0, 0, 2, STATUS_KEY, 1]).is_err());
        assert!(read_response(&[0, 0, 0, 0, 2, STATUS_KEY, 0xff]).is_err());
    }
}
