//! The real hook binary, deployed through its own dispatch into a simulated
//! unit: the foundation every later behaviour stands on.

mod common;

#[test]
fn every_hook_in_metadata_runs_with_exit_0_in_a_fresh_unit() {
    let sim = common::unit();
    for run in sim.deploy() {
        run.assert_ok();
    }
    for hook in [
        "update-status",
        "upgrade-charm",
        "config-changed",
        "leader-settings-changed",
    ] {
        sim.hook(hook).assert_ok();
    }
    // Every relation hook of every endpoint, with a relation context.
    let metadata: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(sim.charm_dir().join("metadata.yaml")).unwrap(),
    )
    .unwrap();
    let mut endpoints = vec![];
    for role in ["requires", "provides", "peers"] {
        for (name, _) in metadata[role].as_object().unwrap() {
            let app = if role == "peers" {
                "kubernetes-worker"
            } else {
                "remote-app"
            };
            endpoints.push((name.clone(), app));
        }
    }
    assert_eq!(endpoints.len(), 13);
    for (endpoint, app) in &endpoints {
        let id = sim.relate(endpoint, app);
        let unit = format!("{app}/1");
        for run in sim.join(id, &unit, &[("key", "value")]) {
            run.assert_ok();
        }
        sim.change(id, &unit, &[("key", "other")]).assert_ok();
        for run in sim.unrelate(id) {
            run.assert_ok();
        }
    }
    // A secret the unit reads, rotated by its owner.
    let id = sim.add_secret("other-app", "", &[("key", "one")], true);
    sim.edit_unit(|u| u.secrets.get_mut(&id).unwrap().tracked = Some(1));
    sim.set_secret_content(&id, &[("key", "two")])
        .expect("secret-changed")
        .assert_ok();
    for hook in ["stop", "remove"] {
        sim.hook(hook).assert_ok();
    }
    let ran: std::collections::BTreeSet<String> =
        sim.unit().hooks.iter().map(|h| h.name.clone()).collect();
    let declared = std::fs::read_dir(sim.charm_dir().join("hooks")).unwrap();
    for entry in declared {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(ran.contains(&name), "hook {name} was not exercised");
    }
    assert_eq!(sim.unit().error, None);
}

#[test]
fn the_architecture_is_detected_and_reported() {
    let sim = common::unit();
    sim.hook("install").assert_ok();
    let (status, message) = sim.status();
    assert!(
        message.contains(common::arch()),
        "status {status}: {message}"
    );
    let logs = sim.unit().logs;
    assert!(
        logs.iter()
            .any(|l| l.level == "INFO" && l.message.contains(common::arch())),
        "juju-log never named the arch: {logs:?}"
    );
}

#[test]
fn the_agent_status_before_install_is_replaced_by_the_charm() {
    let sim = common::unit();
    sim.hook("install").assert_ok();
    let history = sim.unit().status_history;
    assert_eq!(history[0].message, "installing charm software");
    assert!(history[0].agent);
    assert_eq!(history.last().unwrap().hook, "install");
    assert!(!history.last().unwrap().agent);
}

#[test]
fn a_failing_hook_tool_is_logged_with_its_stderr_and_fails_the_hook() {
    let sim = common::unit();
    sim.edit_unit(|s| {
        s.tool_faults
            .insert("status-set".into(), "connection is shut down".into());
    });
    let run = sim.hook("install");
    assert_ne!(run.exit, 0, "the hook must fail so that Juju retries it");
    let logs = sim.unit().logs;
    let error = logs
        .iter()
        .find(|l| l.level == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR in juju-log: {logs:?}"));
    assert!(error.message.contains("status-set"), "{}", error.message);
    assert!(
        error.message.contains("connection is shut down"),
        "{}",
        error.message
    );
    assert!(error.message.contains("hooks/install"), "{}", error.message);
    assert!(
        run.stderr.contains("connection is shut down"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sim.status(),
        ("error".to_string(), "hook failed: \"install\"".to_string())
    );

    // The agent retries; once the tool works again the unit recovers.
    sim.edit_unit(|s| s.tool_faults.clear());
    sim.hook("install").assert_ok();
    assert_ne!(sim.status().0, "error");
}

#[test]
fn events_the_charm_does_not_know_exit_0() {
    let sim = common::unit();
    sim.hook("install").assert_ok();
    for hook in [
        "collect-metrics",
        "secret-changed",
        "pre-series-upgrade",
        "data-storage-attached",
    ] {
        let run = sim.hook(hook);
        run.assert_ok();
    }
    assert_eq!(sim.unit().error, None);
}

#[test]
fn a_converged_hook_sets_no_status_and_writes_nothing() {
    let sim = common::unit();
    for run in sim.deploy() {
        run.assert_ok();
    }
    sim.hook("update-status").assert_ok();
    let state_file = sim.charm_dir().join(".kubernetes-worker-state.json");
    let before = std::fs::metadata(&state_file).unwrap().modified().unwrap();
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    let calls = sim.tool_calls_since(mark);
    assert!(
        calls.iter().all(|c| c.tool != "status-set"),
        "status set again in a converged unit: {calls:?}"
    );
    assert!(
        calls.len() <= 4,
        "update-status made {} tool calls: {calls:?}",
        calls.len()
    );
    assert_eq!(
        std::fs::metadata(&state_file).unwrap().modified().unwrap(),
        before
    );
    assert!(sim.machine_calls_since(mark).is_empty());
}

#[test]
fn the_charm_state_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let sim = common::unit();
    sim.hook("install").assert_ok();
    let mode = std::fs::metadata(sim.charm_dir().join(".kubernetes-worker-state.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn an_action_the_charm_cannot_do_yet_fails_the_action_not_the_unit() {
    let sim = common::unit();
    sim.hook("install").assert_ok();
    let (run, action) = sim.action("resume", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert_eq!(sim.unit().error, None);
}

#[test]
fn old_agents_without_dispatch_path_run_hooks_through_the_links() {
    // Pre-2.8 agents run hooks/<name> with no JUJU_DISPATCH_PATH: the link
    // leads to dispatch, which derives the event from $0.
    let sim = common::unit();
    sim.hook_as_old_agent("install").assert_ok();
    assert_eq!(sim.unit().status_history.last().unwrap().hook, "install");
    assert!(sim.status().1.contains(common::arch()));
    let mark = sim.mark();
    sim.hook_as_old_agent("collect-metrics").assert_ok();
    assert!(
        sim.tool_calls_since(mark).is_empty(),
        "an unknown hook did work"
    );
}
