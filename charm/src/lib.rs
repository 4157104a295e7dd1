//! The Juju hook environment for Rust.
//!
//! A machine charm is a program the Juju unit agent runs once per event (a
//! hook or an action) with the event described only by environment
//! variables, and that talks back to the agent through the hook tools on its
//! `PATH`. This crate is that environment, typed, and knows nothing of what
//! the charm manages:
//!
//! - [`context`]: which event is running, for which unit and relation;
//! - [`tools`]: the hook tools (`config-get`, `relation-set`, ...), the only
//!   place they are called; every failure carries the tool, its arguments,
//!   exit code and stderr;
//! - [`resources`]: attached resources, with Juju's zero-byte convention;
//! - [`exec`]: running other programs with captured output;
//! - [`snap`], [`service`]: snaps (the CLI, and the metadata snapd lays
//!   out) and systemd services;
//! - [`sysctl`]: kernel tunables;
//! - [`host`]: the machine's host name and FQDN;
//! - [`files`]: atomic, mode-correct file writes that skip unchanged
//!   content, built on [`durable`] (the temp-file, fsync, rename write);
//! - [`state`]: what the charm recorded in earlier hooks;
//! - [`intent`]: a mark written before a hook's first change, so that the
//!   next hook knows when one was killed half-way;
//! - [`logging`]: a `log` backend that reaches both the operator
//!   (`juju-log`) and the agent's unit log (stdout/stderr), and [`quote`]
//!   for outside text quoted in a log line or a status;
//! - [`root`]: the machine's filesystem root, movable for tests.
//!
//! Juju's side of the contract is described in `shared/juju-contract.md`.

pub mod context;
pub mod durable;
pub mod exec;
pub mod files;
pub mod host;
pub mod intent;
pub mod logging;
pub mod quote;
pub mod resources;
pub mod root;
pub mod service;
pub mod snap;
pub mod state;
pub mod status;
pub mod sysctl;
pub mod tools;

pub use context::{Event, HookContext, HookKind, RelationEvent, RelationId};
pub use status::{Status, StatusKind};
pub use tools::HookTools;
