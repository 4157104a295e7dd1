//! A simulated Juju unit for testing a machine charm through its real
//! binary, as the Juju unit agent would run it.
//!
//! Everything the charm talks to is a real executable on `PATH`: the hook
//! tools of `shared/juju-contract.md`, plus `snap` and `systemctl`. They are
//! one multi-call binary (`juju-sim`), hard-linked under each name into the
//! simulation's directory, and keep their state in JSON files there:
//!
//! - `unit.json` ([`model::UnitState`]): what the controller and the agent
//!   know: config, resources, relations and their data, status history,
//!   logs, every tool call, transactional changes of the running hook;
//! - `machine.json` ([`machine::Machine`]): installed snaps, snap config,
//!   services, the store catalog, injected store faults, every call.
//!
//! Tests drive it through [`harness::Sim`].

pub mod application;
pub mod charmfiles;
pub mod clouds;
pub mod cluster;
pub mod fixtures;
pub mod flags;
pub mod gojson;
pub mod harness;
pub mod http;
pub mod kill;
pub mod machine;
pub mod model;
pub mod processes;
pub mod snapshot;
pub mod ssa;
pub mod store;
pub mod tools;

pub use harness::{host_arch, kernel_machine, CharmSource, HookRun, Host, Mark, Sim, SimOptions};
