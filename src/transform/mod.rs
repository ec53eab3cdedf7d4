//! The transform stage: what happens to a buffered body on a route with rules.
//!
//! Request direction: a strict scan records the spans of the selected values and the
//! new values are spliced into the original bytes (`request`, `form`). Response
//! direction: every ciphertext of ours is opened back to its value and type
//! (`response`). Neither direction ever logs, returns in an error, or panics with a
//! field value: errors carry reasons and offsets only.

pub mod detect;
pub mod form;
pub mod jsonpath;
pub mod request;
pub mod response;
pub mod scan;

use std::collections::HashMap;
use std::sync::Arc;

use crate::crypto::{self, Mode};
use crate::flowlog::ConfigStr;
pub use jsonpath::JsonPath;

/// How a masked value keeps a little of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskStyle {
    /// Keep the last N characters, star the rest.
    KeepLast(usize),
    /// Keep the domain of an email address: `***@example.com`.
    Email,
}

/// What a rule does to the values it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Seal with a random nonce.
    Encrypt,
    /// Seal deterministically: equal values give equal ciphertext.
    EncryptDeterministic,
    /// Replace by a fixed JSON value (raw JSON text, validated at load).
    Redact(Arc<str>),
    /// Remove the member or element.
    Drop,
    /// Replace by a masked string.
    Mask(MaskStyle),
    /// Replace by a keyed pseudonym: same input, same pseudonym.
    Hash,
}

impl Action {
    /// The action's config name, for metrics and flow events.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Encrypt => "encrypt",
            Action::EncryptDeterministic => "encrypt-deterministic",
            Action::Redact(_) => "redact",
            Action::Drop => "drop",
            Action::Mask(_) => "mask",
            Action::Hash => "hash",
        }
    }

    fn seal_mode(&self) -> Option<Mode> {
        match self {
            Action::Encrypt => Some(Mode::Random),
            Action::EncryptDeterministic => Some(Mode::Deterministic),
            _ => None,
        }
    }
}

/// One compiled field rule.
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// Stable name, bound into the ciphertext.
    pub label: ConfigStr,
    /// Data category, for the flow map.
    pub category: ConfigStr,
    /// What to do.
    pub action: Action,
    /// A sibling member whose value binds the ciphertext to its record (`bind`).
    pub bind: Option<Arc<str>>,
}

/// The rules of one route, with their paths in the same order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// The rules.
    pub fields: Vec<FieldRule>,
    /// Their compiled paths.
    pub paths: Vec<JsonPath>,
}

impl RuleSet {
    /// The record-key member names the bound rules of this set need.
    pub fn record_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for f in &self.fields {
            if let Some(b) = &f.bind {
                if !names.contains(&&**b) {
                    names.push(b);
                }
            }
        }
        names
    }
}

/// Every label of the configuration, so that a ciphertext found anywhere in a response
/// can be matched to its label, and one sitting in another field's slot noticed.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    by_tag: HashMap<String, ConfigStr>,
    /// Member name -> the labels whose sealing rules end in that name.
    slot_owners: HashMap<String, Vec<ConfigStr>>,
    /// Bound labels -> the sibling member holding the record key.
    binds: HashMap<ConfigStr, Arc<str>>,
    /// Every record-key member name, for the scanner.
    record_names: Vec<Arc<str>>,
}

impl Labels {
    /// Registers a label and the member name its path ends in; `seals` says whether the
    /// rule writes ciphertext (only those claim a member name). Returns the label already
    /// registered under the same tag, if it is a different one (a tag collision).
    pub fn add(
        &mut self,
        label: ConfigStr,
        last_name: Option<&str>,
        seals: bool,
    ) -> Option<ConfigStr> {
        let tag = crypto::label_tag(&label);
        if let Some(&existing) = self.by_tag.get(&tag) {
            if existing != label {
                return Some(existing);
            }
        }
        self.by_tag.insert(tag, label);
        if let (Some(name), true) = (last_name, seals) {
            let owners = self.slot_owners.entry(name.to_owned()).or_default();
            if !owners.contains(&label) {
                owners.push(label);
            }
        }
        None
    }

    /// Binds `label` to the record key in sibling member `member`; returns the other
    /// member already bound to this label, if it differs.
    pub fn bind(&mut self, label: ConfigStr, member: &Arc<str>) -> Option<Arc<str>> {
        if let Some(existing) = self.binds.get(&label) {
            return (existing != member).then(|| existing.clone());
        }
        self.binds.insert(label, member.clone());
        if !self.record_names.contains(member) {
            self.record_names.push(member.clone());
        }
        None
    }

    /// The member holding `label`'s record key, when the label is bound.
    pub fn bound_to(&self, label: &str) -> Option<&Arc<str>> {
        self.binds.get(label)
    }

    /// Every record-key member name.
    pub fn record_names(&self) -> Vec<&str> {
        self.record_names.iter().map(|n| &**n).collect()
    }

    /// The label a token's tag names.
    pub fn by_tag(&self, tag: &str) -> Option<ConfigStr> {
        self.by_tag.get(tag).copied()
    }

    /// May a ciphertext of `label` sit under member name `name`? A name that sealing
    /// rules claim admits only their labels; any other name admits every label (backends
    /// rename members).
    pub fn slot_allows(&self, name: &str, label: ConfigStr) -> bool {
        self.slot_owners
            .get(name)
            .is_none_or(|owners| owners.contains(&label))
    }
}

/// Bounds for buffered bodies.
pub use scan::Limits;

/// Is `s` one of our ciphertexts or the unreadable marker? Such values are refused on
/// the way in, so no client can make the proxy decrypt for it, or overwrite data with a
/// marker.
pub fn is_ours(s: &str) -> bool {
    s == crypto::MARKER || crypto::parse_token(s).is_some()
}

/// Masks `value` in `style`. Short values are starred completely.
pub fn mask(value: &str, style: MaskStyle) -> String {
    match style {
        MaskStyle::KeepLast(n) => {
            let count = value.chars().count();
            if count <= n {
                return "*".repeat(count.max(1));
            }
            let tail: String = value.chars().skip(count - n).collect();
            "*".repeat(count - n) + &tail
        }
        MaskStyle::Email => match value.rsplit_once('@') {
            Some((_, domain)) if !domain.is_empty() => format!("***@{domain}"),
            _ => "***".to_owned(),
        },
    }
}

/// Rules for unit tests: each path labelled by itself, category `contact`.
#[cfg(test)]
pub(crate) fn test_rules(spec: &[(&str, Action)]) -> RuleSet {
    let mut set = RuleSet::default();
    for (path, action) in spec {
        set.paths.push(JsonPath::parse(path).unwrap());
        set.fields.push(FieldRule {
            label: ConfigStr::new(path),
            category: ConfigStr::new("contact"),
            action: action.clone(),
            bind: None,
        });
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_what_they_promise() {
        assert_eq!(
            mask("4111111111111111", MaskStyle::KeepLast(4)),
            "************1111"
        );
        assert_eq!(mask("abc", MaskStyle::KeepLast(4)), "***");
        assert_eq!(
            mask("jane@example.com", MaskStyle::Email),
            "***@example.com"
        );
        assert_eq!(mask("no-at-sign", MaskStyle::Email), "***");
        assert_eq!(mask("ü1234", MaskStyle::KeepLast(2)), "***34");
    }

    #[test]
    fn labels_know_slot_owners() {
        let mut l = Labels::default();
        let email = ConfigStr::new("customer.email");
        let other = ConfigStr::new("sub.email");
        let hashed = ConfigStr::new("sub.hashed");
        let name = ConfigStr::new("customer.name");
        assert!(l.add(email, Some("email"), true).is_none());
        assert!(l.add(name, Some("name"), true).is_none());
        assert!(l.add(hashed, Some("email"), false).is_none());
        assert!(l.slot_allows("name", name));
        assert!(!l.slot_allows("name", email));
        assert!(!l.slot_allows("email", hashed));
        l.add(other, Some("email"), true);
        assert!(l.slot_allows("email", other) && l.slot_allows("email", email));
        assert!(!l.slot_allows("email", name));
        assert!(l.slot_allows("renamed_member", name));
        assert_eq!(l.by_tag(&crypto::label_tag("customer.email")), Some(email));
    }
}
