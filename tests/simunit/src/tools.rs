//! The hook tools of `shared/juju-contract.md`, as the simulated agent
//! serves them: strict about usage (exit 2, `ERROR ...`), failing like Juju
//! (exit 1), printing what Juju prints, and recording every call.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{json, Map, Value};

use crate::charmfiles::CharmFiles;
use crate::flags::{self, boolean, value, Flag, Parsed};
use crate::gojson;
use crate::model::{
    ActionRecord, Databag, LogEntry, PendingOp, RunningHook, StatusEntry, ToolCall, UnitState,
};
use crate::store::Layout;

/// The hook tools this simulation serves.
pub const TOOLS: &[&str] = &[
    "action-fail",
    "action-get",
    "action-set",
    "application-version-set",
    "close-port",
    "config-get",
    "is-leader",
    "juju-log",
    "network-get",
    "open-port",
    "opened-ports",
    "relation-get",
    "relation-ids",
    "relation-list",
    "relation-set",
    "resource-get",
    "secret-get",
    "state-get",
    "state-set",
    "status-get",
    "status-set",
    "unit-get",
];

#[derive(Debug)]
pub struct ToolError {
    pub code: i32,
    pub message: String,
}

fn usage(message: impl Into<String>) -> ToolError {
    ToolError {
        code: 2,
        message: message.into(),
    }
}

fn failure(message: impl Into<String>) -> ToolError {
    ToolError {
        code: 1,
        message: message.into(),
    }
}

type ToolResult = Result<String, ToolError>;

struct Call<'a> {
    args: &'a [String],
    state: &'a mut UnitState,
    hook: RunningHook,
}

/// Runs tool `name`, printing as Juju does; returns the exit code.
pub fn main(name: &str, args: Vec<String>) -> i32 {
    let layout = match Layout::of_current_exe() {
        Ok(layout) => layout,
        Err(e) => {
            eprintln!("ERROR {e}");
            return 1;
        }
    };
    let context_id = std::env::var("JUJU_CONTEXT_ID").unwrap_or_default();
    let kill = crate::kill::count_call(&layout, name, &args);
    if kill == Some(crate::kill::Moment::Before) {
        crate::kill::kill_hook();
    }
    let mut hang = false;
    let result = layout.with(&layout.unit_file(), |state: &mut UnitState| {
        let result = match state.running.clone() {
            Some(_) if state.tool_hangs.contains(name) => {
                hang = true;
                Err(ToolError {
                    code: -9,
                    message: "never answered".into(),
                })
            }
            Some(_) if state.tool_faults.contains_key(name) => {
                Err(failure(state.tool_faults[name].clone()))
            }
            // `<tool> <first argument>`: one resource, one key.
            Some(_)
                if args
                    .first()
                    .is_some_and(|a| state.tool_faults.contains_key(&format!("{name} {a}"))) =>
            {
                let key = format!("{name} {}", args[0]);
                Err(failure(state.tool_faults[&key].clone()))
            }
            Some(hook) if hook.context_id == context_id => {
                let mut call = Call {
                    args: &args,
                    state,
                    hook,
                };
                let result = dispatch(name, &mut call);
                // Action results live on the running hook until it ends.
                let action = call.hook.action.take();
                if let Some(running) = &mut state.running {
                    running.action = action;
                }
                result
            }
            _ => Err(failure(format!(
                "bad request: unknown context {context_id:?}; no hook is running with it"
            ))),
        };
        let hook = state
            .running
            .as_ref()
            .map(|h| h.name.clone())
            .unwrap_or_default();
        state.calls.push(ToolCall {
            hook,
            tool: name.to_string(),
            args: args.clone(),
            exit: result.as_ref().map(|_| 0).unwrap_or_else(|e| e.code),
        });
        (result, true)
    });
    if kill == Some(crate::kill::Moment::After) {
        crate::kill::kill_hook();
    }
    if hang {
        // Outside the state lock: other tools (and the test) go on.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    match result {
        Ok(Ok(stdout)) => {
            print!("{stdout}");
            0
        }
        Ok(Err(e)) => {
            eprintln!("ERROR {}", e.message);
            e.code
        }
        Err(e) => {
            eprintln!("ERROR the simulated agent's state is unreadable: {e}");
            1
        }
    }
}

fn dispatch(name: &str, call: &mut Call) -> ToolResult {
    match name {
        "config-get" => config_get(call),
        "resource-get" => resource_get(call),
        "status-set" => status_set(call),
        "status-get" => status_get(call),
        "juju-log" => juju_log(call),
        "application-version-set" => application_version_set(call),
        "open-port" => port_change(call, true),
        "close-port" => port_change(call, false),
        "opened-ports" => opened_ports(call),
        "relation-ids" => relation_ids(call),
        "relation-list" => relation_list(call),
        "relation-get" => relation_get(call),
        "relation-set" => relation_set(call),
        "unit-get" => unit_get(call),
        "network-get" => network_get(call),
        "is-leader" => is_leader(call),
        "action-get" => action_get(call),
        "action-set" => action_set(call),
        "action-fail" => action_fail(call),
        "state-get" => state_get(call),
        "state-set" => state_set(call),
        "secret-get" => secret_get(call),
        other => Err(failure(format!("unknown command {other:?}"))),
    }
}

const FORMAT: Flag = value(&["format"]);
const RELATION: Flag = value(&["r", "relation"]);

fn parse(call: &Call, flags: &[Flag]) -> Result<Parsed, ToolError> {
    flags::parse(call.args, flags).map_err(usage)
}

fn output(parsed: &Parsed, value: Value) -> ToolResult {
    match parsed.get("format").unwrap_or("smart") {
        "json" => Ok(gojson::json(&value)),
        "yaml" | "smart" => Ok(gojson::smart(&value)),
        other => Err(usage(format!(
            "invalid value {other:?} for option --format: unknown format {other:?}"
        ))),
    }
}

fn no_extra(args: &[String]) -> Result<(), ToolError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(usage(format!("unrecognized args: {args:?}")))
    }
}

fn charm(call: &Call) -> Result<CharmFiles, ToolError> {
    CharmFiles::load(&call.state.charm_dir).map_err(failure)
}

fn config_get(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT, boolean(&["a", "all"])])?;
    let charm = charm(call)?;
    let mut all = Map::new();
    for (name, option) in &charm.config {
        let value = call
            .state
            .config
            .get(name)
            .cloned()
            .unwrap_or_else(|| option.default.clone());
        if !value.is_null() || p.is_set("a") {
            all.insert(name.clone(), value);
        }
    }
    match p.positional.as_slice() {
        [] => output(&p, Value::Object(all)),
        [key] => output(&p, all.get(key).cloned().unwrap_or(Value::Null)),
        [_, rest @ ..] => Err(usage(format!("unrecognized args: {rest:?}"))),
    }
}

fn resource_get(call: &mut Call) -> ToolResult {
    let p = parse(call, &[])?;
    let name = match p.positional.as_slice() {
        [name] => name.clone(),
        [] => return Err(usage("missing required resource name")),
        [_, rest @ ..] => return Err(usage(format!("unrecognized args: {rest:?}"))),
    };
    let charm = charm(call)?;
    let Some(filename) = charm.resources.get(&name) else {
        return Err(failure(format!(
            "could not download resource: HTTP request failed: resource#{}/{name} not found",
            call.state.app()
        )));
    };
    let Some(upload) = call.state.resources.get(&name) else {
        return Err(failure(format!(
            "could not download resource: HTTP request failed: Get https://{}/units/{}/resources/{name}: resource#{}/{name} not found",
            call.state.machine_id,
            call.state.unit.replace('/', "-"),
            call.state.app()
        )));
    };
    // Juju 3.x keeps the downloaded file at <agent>/resources/<filename>
    // and downloads again only when the upload changed.
    let dest_dir = call.state.agent_dir.join("resources");
    let dest = dest_dir.join(filename);
    let upload_bytes = std::fs::read(upload)
        .map_err(|e| failure(format!("could not download resource: reading upload: {e}")))?;
    let current = std::fs::read(&dest).ok();
    if current.as_deref() != Some(upload_bytes.as_slice()) {
        std::fs::create_dir_all(&dest_dir)
            .and_then(|_| std::fs::write(&dest, &upload_bytes))
            .map_err(|e| failure(format!("could not download resource: {e}")))?;
    }
    // No trailing newline: that is what Juju prints.
    Ok(dest.to_string_lossy().into_owned())
}

const STATUSES: [&str; 4] = ["maintenance", "blocked", "waiting", "active"];

fn status_set(call: &mut Call) -> ToolResult {
    let p = parse(call, &[boolean(&["application"])])?;
    let (status, rest) = p
        .positional
        .split_first()
        .ok_or_else(|| usage("invalid args, require <status> [message] [data]"))?;
    if !STATUSES.contains(&status.as_str()) {
        return Err(usage(format!(
            "invalid status {status:?}, expected one of [maintenance blocked waiting active]"
        )));
    }
    let message = match rest {
        [] => String::new(),
        [message] => message.clone(),
        [_, extra @ ..] => return Err(usage(format!("unrecognized args: {extra:?}"))),
    };
    if p.is_set("application") {
        if !call.state.leader {
            return Err(failure("this unit is not the leader"));
        }
        return Ok(String::new());
    }
    let entry = StatusEntry {
        status: status.clone(),
        message,
        hook: call.hook.name.clone(),
        agent: false,
        run: call.hook.number,
    };
    call.state.status = entry.clone();
    call.state.status_set_by_charm = true;
    call.state.status_history.push(entry);
    Ok(String::new())
}

fn status_get(call: &mut Call) -> ToolResult {
    let p = parse(
        call,
        &[
            FORMAT,
            boolean(&["include-data"]),
            boolean(&["application"]),
        ],
    )?;
    no_extra(&p.positional)?;
    let st = &call.state.status;
    if p.is_set("include-data") {
        output(
            &p,
            json!({"message": st.message, "status": st.status, "status-data": {}}),
        )
    } else {
        output(&p, Value::String(st.status.clone()))
    }
}

fn juju_log(call: &mut Call) -> ToolResult {
    let p = parse(
        call,
        &[value(&["l", "log-level"]), boolean(&["debug"]), FORMAT],
    )?;
    if p.positional.is_empty() {
        return Err(usage("no message specified"));
    }
    let level = match p.get("l") {
        Some(level) => level.to_uppercase(),
        None if p.is_set("debug") => "DEBUG".into(),
        None => "INFO".into(),
    };
    if !["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].contains(&level.as_str()) {
        return Err(usage(format!("unknown log level {level:?}")));
    }
    call.state.logs.push(LogEntry {
        level,
        message: p.positional.join(" "),
        hook: call.hook.name.clone(),
    });
    Ok(String::new())
}

fn application_version_set(call: &mut Call) -> ToolResult {
    let p = parse(call, &[])?;
    match p.positional.as_slice() {
        [] => Err(usage("no version specified")),
        [version] => {
            call.state.workload_version = version.clone();
            Ok(String::new())
        }
        [_, rest @ ..] => Err(usage(format!("unrecognized args: {rest:?}"))),
    }
}

/// `80`, `80/tcp`, `8000-8100/udp`, `icmp`, normalised to Juju's form.
fn parse_port(spec: &str) -> Result<String, ToolError> {
    if spec == "icmp" {
        return Ok("icmp".into());
    }
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_lowercase();
    if proto != "tcp" && proto != "udp" {
        return Err(usage(format!(
            "invalid protocol {proto:?}, expected \"tcp\", \"udp\", or \"icmp\""
        )));
    }
    let number = |s: &str| -> Result<u16, ToolError> {
        match s.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(usage(format!("invalid port {spec:?}"))),
        }
    };
    match range.split_once('-') {
        Some((from, to)) => {
            let (from, to) = (number(from)?, number(to)?);
            if from > to {
                return Err(usage(format!("invalid port range {spec:?}")));
            }
            Ok(format!("{from}-{to}/{proto}"))
        }
        None => Ok(format!("{}/{proto}", number(range)?)),
    }
}

fn port_change(call: &mut Call, open: bool) -> ToolResult {
    let p = parse(call, &[value(&["endpoints"]), FORMAT])?;
    let port = match p.positional.as_slice() {
        [port] => parse_port(port)?,
        [] => return Err(usage("no port or range specified")),
        [_, rest @ ..] => return Err(usage(format!("unrecognized args: {rest:?}"))),
    };
    call.state.pending.push(if open {
        PendingOp::OpenPort(port)
    } else {
        PendingOp::ClosePort(port)
    });
    Ok(String::new())
}

/// Juju sorts port ranges by protocol, then by number.
fn port_key(p: &str) -> (String, u32) {
    let (range, proto) = p.split_once('/').unwrap_or((p, ""));
    let from = range
        .split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (proto.to_string(), from)
}

fn opened_ports(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT, boolean(&["endpoints"])])?;
    no_extra(&p.positional)?;
    let mut ports: Vec<String> = call.state.effective_ports().into_iter().collect();
    ports.sort_by_key(|p| port_key(p));
    output(&p, json!(ports))
}

/// The relation a tool acts on: `-r`, or the running relation hook's.
fn target_relation(call: &Call, p: &Parsed) -> Result<u32, ToolError> {
    match p.get("r") {
        Some(raw) => {
            let number = raw.rsplit(':').next().unwrap_or(raw);
            number
                .parse::<u32>()
                .ok()
                .filter(|id| call.state.relation(*id).is_some())
                .ok_or_else(|| {
                    usage(format!(
                        "invalid value {raw:?} for option -r: relation not found"
                    ))
                })
        }
        None => call
            .hook
            .relation_id
            .ok_or_else(|| usage("no relation id specified")),
    }
}

fn relation_ids(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT])?;
    let endpoint = match p.positional.as_slice() {
        [endpoint] => endpoint.clone(),
        [] => match call.hook.relation_id.and_then(|id| call.state.relation(id)) {
            Some(rel) => rel.endpoint.clone(),
            None => return Err(usage("no endpoint name specified")),
        },
        [_, rest @ ..] => return Err(usage(format!("unrecognized args: {rest:?}"))),
    };
    let mut ids: Vec<String> = call
        .state
        .relations
        .iter()
        .filter(|r| r.endpoint == endpoint)
        .map(|r| r.rid())
        .collect();
    ids.sort();
    output(&p, json!(ids))
}

fn relation_list(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT, RELATION, boolean(&["app"])])?;
    no_extra(&p.positional)?;
    let id = target_relation(call, &p)?;
    let rel = call
        .state
        .relation(id)
        .ok_or_else(|| failure("relation vanished"))?;
    if p.is_set("app") {
        return output(&p, Value::String(rel.remote_app.clone()));
    }
    let members: Vec<&String> = rel.members.iter().collect();
    output(&p, json!(members))
}

fn relation_get(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT, RELATION, boolean(&["app"])])?;
    let id = target_relation(call, &p)?;
    let (key, who) = match p.positional.as_slice() {
        [] => ("-".to_string(), None),
        [key] => (key.clone(), None),
        [key, who] => (key.clone(), Some(who.clone())),
        [_, _, rest @ ..] => return Err(usage(format!("unrecognized args: {rest:?}"))),
    };
    let app = p.is_set("app");
    let rel = call
        .state
        .relation(id)
        .ok_or_else(|| failure("relation vanished"))?;
    let rid = rel.rid();
    let who = match who {
        Some(who) => who,
        None if app => call
            .hook
            .remote_app
            .clone()
            .unwrap_or_else(|| rel.remote_app.clone()),
        None => call
            .hook
            .remote_unit
            .clone()
            .ok_or_else(|| usage("no unit id specified"))?,
    };
    let bag: Databag = if app {
        if who == call.state.app() {
            // Juju's readLocalApplicationSettings: on a peer relation
            // every unit may read its application's bag.
            if !call.state.leader && !rel.peer {
                return Err(failure(format!(
                    "cannot read settings for application {who:?} in relation {rid:?}: permission denied"
                )));
            }
            call.state.local_bag(id, true)
        } else if who == rel.remote_app {
            rel.remote_app_data.clone()
        } else {
            return Err(failure(format!(
                "cannot read settings for application {who:?} in relation {rid:?}: application {who:?} not found"
            )));
        }
    } else if who == call.state.unit {
        call.state.local_bag(id, false)
    } else {
        rel.remote_units.get(&who).cloned().ok_or_else(|| {
            failure(format!(
                "cannot read settings for unit {who:?} in relation {rid:?}: unit {who:?}: settings not found"
            ))
        })?
    };
    if key == "-" {
        output(&p, json!(bag))
    } else {
        output(&p, bag.get(&key).map(|v| json!(v)).unwrap_or(Value::Null))
    }
}

fn read_stdin() -> Result<String, ToolError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| failure(format!("reading stdin: {e}")))?;
    Ok(text)
}

/// Settings from `--file` (YAML map) and `key=value` arguments, trimmed;
/// arguments win over the file; a key twice in the arguments is an error.
fn settings(p: &Parsed) -> Result<Databag, ToolError> {
    let mut data = Databag::new();
    if let Some(file) = p.get("file") {
        let text = if file == "-" {
            read_stdin()?
        } else {
            std::fs::read_to_string(file).map_err(|e| failure(format!("reading {file}: {e}")))?
        };
        let map: BTreeMap<String, serde_yaml::Value> = if text.trim().is_empty() {
            BTreeMap::new()
        } else {
            serde_yaml::from_str(&text).map_err(|e| usage(format!("invalid YAML: {e}")))?
        };
        for (k, v) in map {
            let v = match v {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Null => String::new(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                serde_yaml::Value::Number(n) => n.to_string(),
                other => return Err(usage(format!("value of {k:?} is not a string: {other:?}"))),
            };
            data.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for arg in &p.positional {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| usage(format!("expected \"key=value\", got {arg:?}")))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(usage(format!("expected \"key=value\", got {arg:?}")));
        }
        if !seen.insert(k.to_string()) {
            return Err(usage(format!("duplicate key specified: {k:?}")));
        }
        data.insert(k.to_string(), v.trim().to_string());
    }
    Ok(data)
}

fn relation_set(call: &mut Call) -> ToolResult {
    let p = parse(
        call,
        &[RELATION, value(&["file"]), boolean(&["app"]), FORMAT],
    )?;
    let id = target_relation(call, &p)?;
    let data = settings(&p)?;
    let app = p.is_set("app");
    if app && !call.state.leader {
        return Err(failure(
            "cannot write relation settings: this unit is not the leader",
        ));
    }
    call.state.pending.push(PendingOp::RelationSet {
        relation_id: id,
        app,
        data,
    });
    Ok(String::new())
}

fn unit_get(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT])?;
    match p.positional.as_slice() {
        [key] if key == "private-address" => output(&p, json!(call.state.private_address)),
        [key] if key == "public-address" => output(&p, json!(call.state.public_address)),
        [key] => Err(usage(format!("unknown setting {key:?}"))),
        [] => Err(usage("no setting specified")),
        [_, rest @ ..] => Err(usage(format!("unrecognized args: {rest:?}"))),
    }
}

fn network_get(call: &mut Call) -> ToolResult {
    let p = parse(
        call,
        &[
            FORMAT,
            RELATION,
            boolean(&["ingress-address"]),
            boolean(&["bind-address"]),
            boolean(&["egress-subnets"]),
            boolean(&["primary-address"]),
        ],
    )?;
    let binding = match p.positional.as_slice() {
        [binding] => binding.clone(),
        [] => return Err(usage("no arguments specified")),
        [_, rest @ ..] => return Err(usage(format!("unrecognized args: {rest:?}"))),
    };
    let charm = charm(call)?;
    if !charm.endpoints.contains(&binding) && binding != "juju-info" {
        return Err(failure(format!(
            "no network config found for binding {binding:?}"
        )));
    }
    // Each binding has the addresses of its space.
    let all = call.state.binding_addresses(&binding);
    let address = all[0].clone();
    let host_cidr = |a: &str| {
        if a.contains(':') {
            format!("{a}/128")
        } else {
            format!("{a}/32")
        }
    };
    let subnet = host_cidr(&address);
    let mut addresses = Vec::new();
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    for a in &all {
        let cidr = host_cidr(a);
        addresses.push(json!({"hostname": "", "address": a, "cidr": cidr, "value": a}));
        ingress.push(json!(a));
        egress.push(json!(cidr));
    }
    let wanted: Vec<(&str, Value)> = [
        ("ingress-address", json!(address)),
        ("bind-address", json!(address)),
        ("egress-subnets", json!(subnet)),
        ("primary-address", json!(address)),
    ]
    .into_iter()
    .filter(|(flag, _)| p.is_set(flag))
    .collect();
    match wanted.as_slice() {
        [] => output(
            &p,
            json!({
                "bind-addresses": [{"mac-address": "", "interface-name": "eth0",
                    "addresses": addresses}],
                "egress-subnets": egress,
                "ingress-addresses": ingress,
            }),
        ),
        [(_, v)] => output(&p, v.clone()),
        many => output(
            &p,
            Value::Object(
                many.iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
        ),
    }
}

fn is_leader(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT])?;
    no_extra(&p.positional)?;
    output(&p, json!(call.state.leader))
}

fn running_action<'a>(call: &'a mut Call) -> Result<&'a mut ActionRecord, ToolError> {
    call.hook
        .action
        .as_mut()
        .ok_or_else(|| failure("not running an action"))
}

fn action_get(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT])?;
    let mut value = Value::Object(running_action(call)?.params.clone());
    for key in &p.positional {
        for part in key.split('.') {
            value = value.get(part).cloned().unwrap_or(Value::Null);
        }
    }
    output(&p, value)
}

fn valid_action_key(key: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    key.split('.').all(ok)
}

fn action_set(call: &mut Call) -> ToolResult {
    let p = parse(call, &[])?;
    if p.positional.is_empty() {
        return Err(usage("no key=value pairs specified"));
    }
    let action = running_action(call)?;
    for arg in &p.positional {
        let (key, val) = arg
            .split_once('=')
            .ok_or_else(|| usage(format!("argument {arg:?} must be of the form key...=value")))?;
        if !valid_action_key(key) {
            return Err(usage(format!(
                "key {key:?} must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric, hyphens and periods"
            )));
        }
        let top = key.split('.').next().unwrap_or(key);
        if ["stdout", "stdout-encoding", "stderr", "stderr-encoding"].contains(&top) {
            return Err(usage(format!("cannot set reserved action key {key:?}")));
        }
        let mut node = &mut action.results;
        let parts: Vec<&str> = key.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            let entry = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = entry.as_object_mut().ok_or_else(|| failure("internal"))?;
        }
        node.insert(parts[parts.len() - 1].to_string(), json!(val));
    }
    Ok(String::new())
}

fn action_fail(call: &mut Call) -> ToolResult {
    let p = parse(call, &[])?;
    let action = running_action(call)?;
    action.status = "failed".into();
    action.message = if p.positional.is_empty() {
        "action failed without reason given, check action for errors".into()
    } else {
        p.positional.join(" ")
    };
    Ok(String::new())
}

fn state_get(call: &mut Call) -> ToolResult {
    let p = parse(call, &[FORMAT, boolean(&["strict"])])?;
    let state = call.state.effective_charm_state();
    match p.positional.as_slice() {
        [] => output(&p, json!(state)),
        [key] if key == "-" => output(&p, json!(state)),
        [key] => match state.get(key) {
            Some(v) => output(&p, json!(v)),
            None if p.is_set("strict") => Err(failure(format!("{key:?} not found"))),
            None => output(&p, json!("")),
        },
        [_, rest @ ..] => Err(usage(format!("unrecognized args: {rest:?}"))),
    }
}

fn state_set(call: &mut Call) -> ToolResult {
    let p = parse(call, &[value(&["file"])])?;
    let data = settings(&p)?;
    call.state.pending.push(PendingOp::StateSet(data));
    Ok(String::new())
}

/// `secret:<xid>` for a URI `secret-get` takes, as Juju's
/// `secrets.ParseURI` reads it: `secret:<xid>`, `secret://<uuid>/<xid>`,
/// or the bare xid (20 characters of base32hex, lowercase); the host, if
/// any, a UUID. Anything else: `None` (the tool refuses it, exit 2).
pub fn secret_key(id: &str) -> Option<String> {
    let xid = |x: &str| {
        x.len() == 20
            && x.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c))
    };
    let uuid = |u: &str| {
        let groups: Vec<&str> = u.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups.iter().all(|g| {
                g.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            })
    };
    let spec = match id.strip_prefix("secret:") {
        Some(rest) => match rest.strip_prefix("//") {
            Some(rest) => {
                let (host, path) = rest.split_once('/')?;
                if !uuid(host) {
                    return None;
                }
                path
            }
            None => rest,
        },
        None if !id.contains(':') => id,
        None => return None,
    };
    xid(spec).then(|| format!("secret:{spec}"))
}

fn secret_get(call: &mut Call) -> ToolResult {
    let p = parse(
        call,
        &[
            FORMAT,
            boolean(&["refresh"]),
            boolean(&["peek"]),
            value(&["label"]),
        ],
    )?;
    if p.is_set("refresh") && p.is_set("peek") {
        return Err(usage("specify one of --peek or --refresh but not both"));
    }
    let (id, key) = match p.positional.as_slice() {
        [] if p.get("label").is_some() => (None, None),
        [] => return Err(usage("missing secret URI")),
        [id] => (Some(id.clone()), None),
        [id, key] => (Some(id.clone()), Some(key.clone())),
        [_, _, rest @ ..] => return Err(usage(format!("unrecognized args: {rest:?}"))),
    };
    let id = match (id, p.get("label")) {
        (Some(id), _) => {
            secret_key(&id).ok_or_else(|| usage(format!("secret URI {id:?} not valid")))?
        }
        (None, Some(label)) => call
            .state
            .secrets
            .iter()
            .find(|(_, s)| s.label == label && !s.removed)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| failure(format!("secret with label {label:?} not found")))?,
        (None, None) => return Err(usage("missing secret URI")),
    };
    let shown = p.positional.first().cloned().unwrap_or_else(|| id.clone());
    let secret = match call.state.secrets.get(&id) {
        Some(s) if !s.removed && !s.revisions.is_empty() => s.clone(),
        _ => return Err(failure(format!("secret {shown:?} not found"))),
    };
    if !secret.granted {
        return Err(failure("permission denied"));
    }
    let latest = secret.revisions.len();
    let revision = if p.is_set("peek") {
        latest
    } else if p.is_set("refresh") {
        call.state.pending.push(PendingOp::SecretTrack {
            id: id.clone(),
            revision: latest,
        });
        latest
    } else {
        match call.state.tracked_revision(&id) {
            Some(tracked) => tracked,
            None => {
                call.state.pending.push(PendingOp::SecretTrack {
                    id: id.clone(),
                    revision: latest,
                });
                latest
            }
        }
    };
    let content = &secret.revisions[revision - 1];
    match key {
        None => output(&p, json!(content)),
        Some(key) => match content.get(&key) {
            Some(v) => output(&p, json!(v)),
            None => Err(failure(format!("secret {shown:?} has no key {key:?}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_normalise() {
        assert_eq!(parse_port("80").unwrap(), "80/tcp");
        assert_eq!(parse_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(parse_port("8000-8100/tcp").unwrap(), "8000-8100/tcp");
        assert_eq!(parse_port("0/tcp").unwrap_err().code, 2);
        assert_eq!(parse_port("80/sctp").unwrap_err().code, 2);
    }

    #[test]
    fn secret_ids_in_both_forms() {
        assert_eq!(
            secret_key("secret:cu1u0g7mp25c77c7p8tg").unwrap(),
            "secret:cu1u0g7mp25c77c7p8tg"
        );
        assert_eq!(
            secret_key("secret://6f7c3a8e-5b0f-4a7e-9a52-000000000001/cu1u0g7mp25c77c7p8tg")
                .unwrap(),
            "secret:cu1u0g7mp25c77c7p8tg"
        );
        assert_eq!(
            secret_key("cu1u0g7mp25c77c7p8tg").unwrap(),
            "secret:cu1u0g7mp25c77c7p8tg"
        );
        assert_eq!(secret_key("cu1u0g"), None);
        assert_eq!(secret_key("secret:"), None);
        assert_eq!(secret_key("secret:cu1u0g7mp25c77c7p8tz"), None);
        assert_eq!(secret_key("secret://model/cu1u0g7mp25c77c7p8tg"), None);
        assert_eq!(secret_key("vault:cu1u0g7mp25c77c7p8tg"), None);
    }

    #[test]
    fn action_keys() {
        assert!(valid_action_key("outcome"));
        assert!(valid_action_key("node.cordoned"));
        assert!(!valid_action_key("Outcome"));
        assert!(!valid_action_key("-x"));
        assert!(!valid_action_key("a..b"));
    }
}
