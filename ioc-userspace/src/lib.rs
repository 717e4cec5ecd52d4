//! iocmon's userspace agent.
//!
//! Data flows one way:
//!
//! ```text
//! kernel (ring buffer) -> event (decode) -> process (enrich) -> detect
//!                      -> schema (DeviceNetworkEvents rows) -> sink (output I/O)
//! ```
//!
//! Only `kernel` touches aya; only `sink` writes output. Every other stage is a pure
//! function of its input, so tests drive it without a kernel.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
pub mod container;
pub mod detect;
pub mod dns;
pub mod enforce;
pub mod event;
pub mod health;
pub mod ioc;
pub mod kernel;
pub mod memory;
pub mod pipeline;
pub mod privilege;
pub mod probe;
pub mod process;
pub mod reconfigure;
pub mod reload;
pub mod rules;
pub mod schema;
pub mod sink;
pub mod status;
pub mod text;
