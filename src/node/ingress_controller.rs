//! The ingress controller, as the leader keeps it.

use crate::error::{Error, ToolContext};
use crate::facts::IngressRecord;
use crate::ingress;
use crate::journal::JournalFile;
use crate::kubeapi::{Api, ApiError};
use crate::problem::{Concern, Problem};
use crate::unit_state::{NodeOptions, Recorded};

use super::Node;

/// What the status says while the controller cannot be changed.
fn waiting(what: &str, e: &dyn std::fmt::Display) -> Vec<Problem> {
    vec![Problem::waiting(format!(
        "Waiting to {what} the ingress controller: {e}"
    ))]
}

impl Node<'_> {
    /// Not the leader: the leader keeps the controller, and its troubles.
    pub fn leave_ingress(&self, recorded: &mut Recorded) {
        recorded.concerns.clear(Concern::Ingress);
    }

    /// The ingress controller, as the leader keeps it: applied when
    /// `ingress` is on and what it would apply differs from what it last
    /// applied (or an earlier try failed); deleted, exactly what it
    /// applied, in reverse order, when `ingress` is off. `ssl_key`: the
    /// default certificate's key, from config. A failure is a waiting
    /// status and the next hook tries again.
    /// `leads_now`: this hook asked `is-leader`; otherwise it is asked
    /// before the first write, since Juju 4 tells no deposed leader.
    pub fn converge_ingress(
        &self,
        recorded: &mut Recorded,
        journal: &mut JournalFile,
        options: &NodeOptions,
        ssl_key: Option<&str>,
        leads_now: bool,
    ) -> Result<(), Error> {
        let (Some((url, ca)), Some(token)) = (
            self.api_target(recorded),
            self.disk_tokens().map(|t| t.client_token),
        ) else {
            // The node is not configured yet: its relation hooks come back.
            return Ok(());
        };
        let connect = || Api::new(&url, &ca, &token);
        if !options.ingress {
            return self.remove_ingress(recorded, &connect, leads_now);
        }
        let registry = self.registry(recorded);
        let inputs = ingress::Inputs {
            app: self.app(),
            registry: &registry,
            settings: &options.ingress_settings,
            ssl_key,
        };
        let objects = ingress::objects(&inputs);
        let fingerprint = ingress::fingerprint(&objects);
        let previous = recorded.journal.ingress.clone().unwrap_or_default();
        if previous.fingerprint == fingerprint && recorded.concerns.is_clear(Concern::Ingress) {
            return Ok(());
        }
        if !self.still_leads(recorded, leads_now)? {
            return Ok(());
        }
        let paths: Vec<String> = objects.iter().map(|o| o.path.clone()).collect();
        // Written ahead: whatever this apply creates is known to be the
        // charm's, even if the hook stops half-way.
        let mut all = previous.paths.clone();
        all.extend(
            paths
                .iter()
                .filter(|p| !previous.paths.contains(p))
                .cloned(),
        );
        recorded.journal.ingress = Some(IngressRecord {
            fingerprint: String::new(),
            paths: all,
        });
        journal.persist(&recorded.journal)?;
        let applied = connect().and_then(|api| {
            for object in &objects {
                api.apply(&object.path, &object.body)?;
            }
            // What an earlier apply created and this one does not (the
            // default certificate's Secret once unset).
            previous
                .paths
                .iter()
                .rev()
                .filter(|p| !paths.contains(p))
                .try_for_each(|p| api.delete(p))
        });
        if let Err(e) = applied {
            recorded
                .concerns
                .set(Concern::Ingress, waiting("configure", &e));
            return Ok(());
        }
        log::info!(
            "applied the ingress controller ({} objects, image {})",
            objects.len(),
            ingress::image(&inputs)
        );
        recorded.journal.ingress = Some(IngressRecord { fingerprint, paths });
        recorded.concerns.clear(Concern::Ingress);
        Ok(())
    }

    /// Deletes exactly what this unit applied, in reverse order.
    fn remove_ingress(
        &self,
        recorded: &mut Recorded,
        connect: &dyn Fn() -> Result<Api, ApiError>,
        leads_now: bool,
    ) -> Result<(), Error> {
        let Some(record) = recorded.journal.ingress.clone() else {
            recorded.concerns.clear(Concern::Ingress);
            return Ok(());
        };
        if !self.still_leads(recorded, leads_now)? {
            return Ok(());
        }
        let removed =
            connect().and_then(|api| record.paths.iter().rev().try_for_each(|p| api.delete(p)));
        if let Err(e) = removed {
            recorded
                .concerns
                .set(Concern::Ingress, waiting("remove", &e));
            return Ok(());
        }
        log::info!(
            "removed the ingress controller ({} objects)",
            record.paths.len()
        );
        recorded.journal.ingress = None;
        recorded.concerns.clear(Concern::Ingress);
        Ok(())
    }

    /// Whether this unit leads, before a leader-only write: asked unless
    /// this hook already did (`leads_now`). A deposed leader leaves the
    /// controller to the new one.
    fn still_leads(&self, recorded: &mut Recorded, leads_now: bool) -> Result<bool, Error> {
        if leads_now {
            return Ok(true);
        }
        let leads = self
            .tools
            .is_leader()
            .doing("asking whether this unit still leads")?;
        recorded.leader = Some(leads);
        if !leads {
            log::info!("no longer the leader: the new leader keeps the ingress controller");
            recorded.concerns.clear(Concern::Ingress);
        }
        Ok(leads)
    }
}
