//! The configuration file as written: serde structs that refuse unknown keys (for us a
//! typo can mean plaintext), with spans kept on every value a later check may fault.
//! Nothing here is interpreted; `compile` turns it into the runtime `Config`.

use serde::Deserialize;
use toml::Spanned;

/// A spanned string.
pub type S = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: RawListen,
    pub admin: Option<RawAdmin>,
    pub upstream: RawUpstream,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub keys: RawKeys,
    pub flow_log: Option<RawFlowLog>,
    #[serde(default, rename = "caller")]
    pub callers: Vec<RawCaller>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaller {
    pub name: S,
    pub token_sha256: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub address: S,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: S,
    pub key: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: S,
    pub name: Option<S>,
    pub timeout: Option<S>,
    pub connect_timeout: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body: Option<S>,
    pub max_depth: Option<Spanned<i64>>,
    pub max_nodes: Option<Spanned<i64>>,
    pub body_timeout: Option<S>,
    pub header_timeout: Option<S>,
    pub max_in_flight: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    pub keyring: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlowLog {
    pub path: S,
    pub rotate_size: Option<S>,
    pub rotate_every: Option<S>,
    pub delete_after: Option<S>,
    pub on_log_failure: Option<S>,
    pub client_address: Option<S>,
    pub hmac: Option<bool>,
    pub instance: Option<S>,
    pub queue: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: S,
    pub methods: Option<Vec<S>>,
    pub path: S,
    pub on_open_failure: Option<S>,
    pub pass_other_types: Option<bool>,
    pub reveal_to: Option<Vec<S>>,
    pub conceal: Option<S>,
    #[serde(default, rename = "field")]
    pub fields: Vec<RawField>,
    #[serde(default, rename = "query")]
    pub queries: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub path: S,
    pub label: Option<S>,
    pub category: S,
    pub action: S,
    pub replacement: Option<Spanned<toml::Value>>,
    pub keep_last: Option<Spanned<i64>>,
    pub mask: Option<S>,
    pub bind: Option<S>,
}
