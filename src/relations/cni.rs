//! `cni` (interface kubernetes-cni): the cluster CIDR and the CNI's
//! configuration file.

use super::{decoded, malformed, EndpointData, Malformed, CNI};
use crate::validate;

/// What the CNI subordinate announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cni {
    pub cidr: String,
    /// `10-flannel.conflist`, when the CNI names its config file.
    pub conf_file: Option<String>,
}

/// The cluster CIDR and config file from the CNI relation whose
/// application sorts first by name.
pub fn cni(data: &EndpointData) -> Result<Option<Cni>, Malformed> {
    let Some(units) = data.first_by_app() else {
        return Ok(None);
    };
    let mut first = EndpointData::default();
    first.relations.insert(String::new(), units.clone());
    let Some(cidr) = cluster_cidr(&first)? else {
        return Ok(None);
    };
    let conf_file = units
        .iter()
        .find_map(|(unit, bag)| bag.get("cni-conf-file").map(|v| (unit, decoded(v))))
        .filter(|(_, f)| !f.is_empty());
    if let Some((unit, file)) = &conf_file {
        validate::simple_name(file).map_err(|why| malformed(CNI, unit, "cni-conf-file", why))?;
    }
    let conf_file = conf_file.map(|(_, f)| f);
    Ok(Some(Cni { cidr, conf_file }))
}

/// The cluster CIDR the CNI subordinate announces.
pub fn cluster_cidr(data: &EndpointData) -> Result<Option<String>, Malformed> {
    for (unit, bag) in data.bags() {
        if let Some(cidr) = bag
            .get("cidr")
            .map(|v| decoded(v))
            .filter(|c| !c.is_empty())
        {
            let valid = cidr.split_once('/').is_some_and(|(ip, bits)| {
                let max = if ip.contains(':') { 128 } else { 32 };
                ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
            });
            if !valid {
                return Err(malformed(
                    CNI,
                    unit,
                    "cidr",
                    format!("is not a CIDR: {}", validate::quoted(&cidr)),
                ));
            }
            return Ok(Some(cidr));
        }
    }
    Ok(None)
}
