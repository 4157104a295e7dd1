//! `tokens`: the COS tokens the control plane answers with; the cache
//! keeps their fingerprints (see [`crate::cos`] for the parsing).

use super::{secret_fingerprint, EndpointData, REDACTED};

/// The tokens relation as the charm may keep it: each unit's `tokens`
/// answer replaced by its fingerprint (the COS token is read again when
/// the configuration that carries it is rebuilt).
pub fn redact_cos_tokens(data: &EndpointData) -> EndpointData {
    let mut data = data.clone();
    for units in data.relations.values_mut() {
        for bag in units.values_mut() {
            if let Some(v) = bag.get_mut("tokens") {
                if !v.starts_with(REDACTED) {
                    *v = secret_fingerprint(v);
                }
            }
        }
    }
    data
}
