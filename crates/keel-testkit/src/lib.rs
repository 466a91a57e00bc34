//! Test support shared by Keel's crates (unpublished; a `[dev-dependencies]` entry only).
//!
//! It owns the pieces several test suites used to carry their own copies of:
//!
//! * [`serve()`]: the accept loop that serves a request handler on a bound loopback
//!   listener, one task per connection (HTTP/1.1 and h2c).
//! * [`Backend`]: a real HTTP backend on `127.0.0.1:0` that identifies as its service
//!   (`x-service: <service>`), answering 200, 500 or another status, optionally after a
//!   delay or random jitter, optionally with its own `/healthz` status.
//! * [`load()`] and [`sequential`]: a bounded client load (a fixed request rate for a fixed
//!   time, or a fixed count one after another) that counts the answers by status in a
//!   [`LoadReport`].
//! * [`free_addr`] and [`free_port`]: a loopback address (or port) where nothing listens.
//! * [`eventually`], [`eventually_holds`] and [`wait_until`] (and their `_every` forms,
//!   for a costly check): the one way a test waits for something to happen elsewhere,
//!   bounded by [`WAIT`].
//! * [`exchange`] and [`get_request`]: one plain HTTP/1.1 exchange on a connection of
//!   its own, read off the wire into a [`RawAnswer`] (status, head, body).
//! * [`read_until`], [`read_to_close`] and [`closed_by_peer`]: reading a raw connection
//!   (plain or TLS) in framing tests, each read bounded by [`WAIT`].
//! * [`IdentifiedShop`] and [`load_by_service`]: several services' identified backends,
//!   and a bounded load that counts the wrong answers (a success from another
//!   application) per service, in [`WrongAnswers`].
//!
//! * [`Etcd`]: a real single-member etcd on loopback ports for the fleet tests (skipped
//!   loudly when `/usr/bin/etcd` is missing), which can be stopped and resumed, and
//!   [`EtcdCluster`]: three members in one raft group, any of which can be killed and
//!   restarted (the failure tests kill the leader).
//!
//! What a suite's requests, configs and proxies look like stays in that suite: this crate
//! knows nothing of Keel's other crates.

mod backend;
mod etcd;
mod etcd_cluster;
mod http1;
mod load;
mod port;
mod raw;
mod serve;
mod shop;
mod wait;

pub use backend::{Answer, Backend, start};
pub use etcd::{ETCD_BINARY, Etcd};
pub use etcd_cluster::{ETCD_CLUSTER_MEMBERS, EtcdCluster};
pub use http1::{RawAnswer, exchange, get_request};
pub use load::{LoadReport, load, sequential};
pub use port::{free_addr, free_port};
pub use raw::{closed_by_peer, has_head, read_to_close, read_until};
pub use serve::serve;
pub use shop::{
    IdentifiedShop, MAX_SHOP_LOAD, MAX_SHOP_RPS, ServiceTally, WrongAnswers, load_by_service,
    toml_list,
};
pub use wait::{
    POLL_EVERY, Settled, WAIT, eventually, eventually_every, eventually_holds, wait_until,
    wait_until_every,
};
