//! The functional core: plain Rust, no `worker` types. The Durable Object feeds it events and
//! carries out the effects it returns; `cargo test` exercises all of it natively.

pub mod chat;
pub mod hub;
pub mod limits;
pub mod peerjs;
pub mod protocol;

#[cfg(test)]
mod tests;
