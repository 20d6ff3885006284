//! The functional core of edge-meet: plain Rust, no `worker` types (this crate does not depend on
//! `worker`, so a `use worker::…` here cannot compile). The Durable Object feeds it events and
//! carries out the effects it returns; `cargo test -p edge-meet-core` exercises all of it natively.

pub mod chat;
pub mod hub;
pub mod limits;
pub mod peerjs;
pub mod protocol;
pub mod queue;
pub mod settings;
pub mod vocabulary;
