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
    pub label: Arc<str>,
    /// Data category, for the flow map.
    pub category: Arc<str>,
    /// What to do.
    pub action: Action,
}

/// The rules of one route, with their paths in the same order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// The rules.
    pub fields: Vec<FieldRule>,
    /// Their compiled paths.
    pub paths: Vec<JsonPath>,
}

/// Every label of the configuration, so that a ciphertext found anywhere in a response
/// can be matched to its label, and one sitting in another field's slot noticed.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    by_tag: HashMap<String, Arc<str>>,
    /// Member name -> the one label whose rules end in that name (None when several do).
    slot_owner: HashMap<String, Option<Arc<str>>>,
}

impl Labels {
    /// Registers a label and the member name its path ends in. Returns the label already
    /// registered under the same tag, if it is a different one (a tag collision).
    pub fn add(&mut self, label: &Arc<str>, last_name: Option<&str>) -> Option<Arc<str>> {
        let tag = crypto::label_tag(label);
        if let Some(existing) = self.by_tag.get(&tag) {
            if existing != label {
                return Some(existing.clone());
            }
        }
        self.by_tag.insert(tag, label.clone());
        if let Some(name) = last_name {
            self.slot_owner
                .entry(name.to_owned())
                .and_modify(|owner| {
                    if owner.as_ref() != Some(label) {
                        *owner = None;
                    }
                })
                .or_insert_with(|| Some(label.clone()));
        }
        None
    }

    /// The label a token's tag names.
    pub fn by_tag(&self, tag: &str) -> Option<&Arc<str>> {
        self.by_tag.get(tag)
    }

    /// The label that owns member name `name`, when exactly one does.
    pub fn owner_of(&self, name: &str) -> Option<&Arc<str>> {
        self.slot_owner.get(name).and_then(Option::as_ref)
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
        let email: Arc<str> = "customer.email".into();
        let other: Arc<str> = "sub.email".into();
        let name: Arc<str> = "customer.name".into();
        assert!(l.add(&email, Some("email")).is_none());
        assert!(l.add(&name, Some("name")).is_none());
        assert_eq!(l.owner_of("name"), Some(&name));
        l.add(&other, Some("email"));
        assert_eq!(l.owner_of("email"), None);
        assert_eq!(l.by_tag(&crypto::label_tag("customer.email")), Some(&email));
    }
}
