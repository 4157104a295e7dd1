//! `juju-sim`: the simulated unit's executables. Called as a hook tool name
//! (`config-get`, ...), `snap` or `systemctl`, it acts as that program.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let name = argv0.rsplit('/').next().unwrap_or_default().to_string();
    let rest: Vec<String> = args.collect();
    let code = if juju_sim::tools::TOOLS.contains(&name.as_str()) {
        juju_sim::tools::main(&name, rest)
    } else if juju_sim::machine::PROGRAMS.contains(&name.as_str()) {
        juju_sim::machine::main(&name, rest)
    } else {
        eprintln!("juju-sim: run me as a hook tool, snap or systemctl (via the links a Sim makes)");
        2
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
