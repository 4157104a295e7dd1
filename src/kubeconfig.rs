//! Kubeconfig files, from typed structures (not templates), as the Python
//! charm wrote them: cluster `juju-cluster`, context `juju-context`, the CA
//! embedded, token authentication.

use base64::Engine;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig<'a> {
    // The one camelCase key of the format (an earlier revision wrote
    // `api-version`, which kubectl ignored).
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: [Named<'a, Cluster>; 1],
    contexts: [Named<'a, Context<'a>>; 1],
    current_context: &'static str,
    users: [Named<'a, User<'a>>; 1],
    preferences: Preferences,
}

#[derive(Serialize)]
struct Named<'a, T> {
    name: &'a str,
    #[serde(flatten)]
    value: T,
}

#[derive(Serialize)]
struct Cluster {
    cluster: ClusterSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterSpec {
    certificate_authority_data: String,
    server: String,
}

#[derive(Serialize)]
struct Context<'a> {
    context: ContextSpec<'a>,
}

#[derive(Serialize)]
struct ContextSpec<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
struct User<'a> {
    user: UserSpec<'a>,
}

#[derive(Serialize)]
struct UserSpec<'a> {
    token: &'a str,
}

#[derive(Serialize)]
struct Preferences {}

/// Renders a kubeconfig for `user` with `token` against `server`.
pub fn render(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    let config = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: [Named {
            name: "juju-cluster",
            value: Cluster {
                cluster: ClusterSpec {
                    certificate_authority_data: base64::engine::general_purpose::STANDARD
                        .encode(ca_pem),
                    server: server.to_string(),
                },
            },
        }],
        contexts: [Named {
            name: "juju-context",
            value: Context {
                context: ContextSpec {
                    cluster: "juju-cluster",
                    user,
                },
            },
        }],
        current_context: "juju-context",
        users: [Named {
            name: user,
            value: User {
                user: UserSpec { token },
            },
        }],
        preferences: Preferences {},
    };
    // Serialising these plain structures cannot fail.
    serde_yaml::to_string(&config).unwrap_or_default()
}

/// The token of the user in a kubeconfig this charm wrote.
pub fn token(text: &str) -> Option<String> {
    let v: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    v.get("users")?
        .get(0)?
        .get("user")?
        .get("token")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_token_kubeconfig() {
        let text = render(
            "https://10.0.0.1:6443",
            "-----BEGIN CERTIFICATE-----\nX\n",
            "kubelet",
            "tok:en",
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Config");
        assert!(v.get("api-version").is_none());
        assert_eq!(v["current-context"], "juju-context");
        assert_eq!(v["clusters"][0]["name"], "juju-cluster");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://10.0.0.1:6443"
        );
        let ca = v["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .unwrap();
        assert!(decoded.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(v["contexts"][0]["context"]["user"], "kubelet");
        assert_eq!(v["users"][0]["name"], "kubelet");
        assert_eq!(v["users"][0]["user"]["token"], "tok:en");
        assert_eq!(token(&text).as_deref(), Some("tok:en"));
        assert_eq!(token("users: []"), None);
        assert_eq!(token(": not yaml"), None);
    }
}
