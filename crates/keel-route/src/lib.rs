//! The compiled routing table: request matching in file order and split resolution.
//!
//! Pure and synchronous: the data plane, the checker (route tests, shadowing
//! witnesses), the blast-radius replay and the detectors all route through the same
//! [`RouteTable::find`], so what `check` proves is what `serve` does.

mod methods;
mod request;
mod ring;
mod route;
mod table;

pub use methods::{MethodSet, is_idempotent};
pub use request::{MAX_HOST_LEN, RequestShape, RequestView, TlsShape, normalize_host};
pub use ring::{MAX_RING_POINTS, RING_SEED, Ring, VNODES_PER_WEIGHT};
pub use route::{CompiledRoute, PoolId, RouteId, ServiceId};
pub use table::{CompileError, RouteTable};
