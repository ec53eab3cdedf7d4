//! Route compilation: `[[route]]` tables with their `[[route.field]]` and
//! `[[route.query]]` rules, into compiled routes (templates parsed, JSONPaths compiled,
//! categories resolved, actions checked, labels registered). Every problem is recorded;
//! nothing stops at the first.

use std::sync::Arc;

use http::Method;

use super::callers::Callers;
use super::diag::Diag;
use super::raw::{RawField, RawRoute};
use super::{categories, count};
use crate::flowlog::ConfigStr;
use crate::route::{Conceal, OpenFailure, Route, Template};
use crate::transform::{Action, FieldRule, JsonPath, Labels, MaskStyle, RuleSet};

pub(super) fn route(
    d: &mut Diag<'_>,
    r: &RawRoute,
    i: usize,
    labels: &mut Labels,
    callers: &Callers,
) -> Option<Route> {
    let key = |k: &str| format!("route[{i}].{k}");
    let reveal_to = r.reveal_to.as_ref().map(|names| {
        names
            .iter()
            .enumerate()
            .filter_map(|(j, n)| match callers.name(n.get_ref()) {
                Some(name) => Some(name),
                None => {
                    d.at(
                        Some(n.span()),
                        key(&format!("reveal_to[{j}]")),
                        format!("no [[caller]] named `{}`", n.get_ref()),
                    );
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let conceal = match r.conceal.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("marker", _)) => Conceal::Marker,
        Some(("ciphertext", _)) => Conceal::Ciphertext,
        Some((_, span)) => {
            d.at(
                Some(span),
                key("conceal"),
                "must be \"marker\" (default) or \"ciphertext\"",
            );
            Conceal::Marker
        }
    };
    if let (Some(c), None) = (&r.conceal, &r.reveal_to) {
        d.at(
            Some(c.span()),
            key("conceal"),
            "`conceal` applies only with `reveal_to`",
        );
    }
    let template = Template::parse(r.path.get_ref())
        .map_err(|m| d.at(Some(r.path.span()), key("path"), m))
        .ok();
    let mut methods = Vec::new();
    for (j, m) in r.methods.iter().flatten().enumerate() {
        match Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
            Ok(method) if m.get_ref().chars().all(|c| c.is_ascii_alphabetic()) => {
                methods.push(method)
            }
            _ => d.at(
                Some(m.span()),
                key(&format!("methods[{j}]")),
                "not an HTTP method",
            ),
        }
    }
    let on_open_failure = match r
        .on_open_failure
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("marker", _)) => OpenFailure::Marker,
        Some(("fail", _)) => OpenFailure::Fail,
        Some((_, span)) => {
            d.at(
                Some(span),
                key("on_open_failure"),
                "must be \"marker\" (default) or \"fail\"",
            );
            OpenFailure::Marker
        }
    };
    let rules = rule_set(d, &r.fields, &format!("route[{i}].field"), labels, false);
    let query_rules = rule_set(d, &r.queries, &format!("route[{i}].query"), labels, true);
    Some(Route {
        name: ConfigStr::new(r.name.get_ref().as_str()),
        methods,
        template: template?,
        rules,
        query_rules,
        on_open_failure,
        pass_other_types: r.pass_other_types.unwrap_or(false),
        reveal_to,
        conceal,
    })
}

/// Compiles the `[[route.field]]` (or `[[route.query]]`) tables of one route; query
/// rules must name one parameter (`$.name`).
fn rule_set(
    d: &mut Diag<'_>,
    raw: &[RawField],
    key: &str,
    labels: &mut Labels,
    query: bool,
) -> RuleSet {
    let mut rules = RuleSet::default();
    for (j, f) in raw.iter().enumerate() {
        let Some((path, rule)) = field(d, f, &format!("{key}[{j}]")) else {
            continue;
        };
        if query && path.single_name().is_none() {
            d.at(
                Some(f.path.span()),
                format!("{key}[{j}].path"),
                "a query rule names one parameter: write `$.name`",
            );
            continue;
        }
        let seals = matches!(rule.action, Action::Encrypt | Action::EncryptDeterministic);
        if let Some(other) = labels.add(rule.label, path.last_name(), seals) {
            d.at(
                Some(f.path.span()),
                format!("{key}[{j}].label"),
                format!("label tag collides with label `{other}`: rename one"),
            );
        }
        if let Some(member) = &rule.bind {
            if let Some(other) = labels.bind(rule.label, member) {
                d.at(
                    f.bind.as_ref().map(|b| b.span()),
                    format!("{key}[{j}].bind"),
                    format!(
                        "label `{}` is already bound to member `{other}`",
                        rule.label
                    ),
                );
            }
        }
        rules.paths.push(path);
        rules.fields.push(rule);
    }
    rules
}

fn field(d: &mut Diag<'_>, f: &RawField, key: &str) -> Option<(JsonPath, FieldRule)> {
    let path = JsonPath::parse(f.path.get_ref())
        .map_err(|e| d.at(Some(f.path.span()), format!("{key}.path"), e.to_string()))
        .ok();
    let category = categories::resolve(f.category.get_ref())
        .map_err(|m| d.at(Some(f.category.span()), format!("{key}.category"), m))
        .ok();
    let action = action(d, f, key);
    let label = f
        .label
        .as_ref()
        .map_or_else(|| f.path.get_ref().clone(), |l| l.get_ref().clone());
    if label.is_empty() || label.chars().any(|c| c.is_control()) {
        d.at(
            f.label.as_ref().map(|l| l.span()),
            format!("{key}.label"),
            "a label is a non-empty printable name",
        );
    }
    let action = action?;
    let bind = f.bind.as_ref().and_then(|b| {
        let seals = matches!(action, Action::Encrypt | Action::EncryptDeterministic);
        let problem = if !seals {
            Some("`bind` applies to encrypt and encrypt-deterministic only")
        } else if b.get_ref().is_empty() {
            Some("`bind` names the sibling member that holds the record key, e.g. \"id\"")
        } else {
            None
        };
        match problem {
            Some(m) => {
                d.at(Some(b.span()), format!("{key}.bind"), m);
                None
            }
            None => Some(Arc::from(b.get_ref().as_str())),
        }
    });
    let rule = FieldRule {
        label: ConfigStr::new(&label),
        category: ConfigStr::new(category?),
        action,
        bind,
    };
    Some((path?, rule))
}

fn action(d: &mut Diag<'_>, f: &RawField, key: &str) -> Option<Action> {
    let span = Some(f.action.span());
    let extra =
        |d: &mut Diag<'_>, name: &str, present: bool, span: Option<std::ops::Range<usize>>| {
            if present {
                d.at(
                    span,
                    format!("{key}.{name}"),
                    format!("`{name}` does not apply to action `{}`", f.action.get_ref()),
                );
            }
        };
    let action = match f.action.get_ref().as_str() {
        "encrypt" => Action::Encrypt,
        "encrypt-deterministic" => Action::EncryptDeterministic,
        "drop" => Action::Drop,
        "hash" => Action::Hash,
        "redact" => {
            let raw = match &f.replacement {
                None => "null".to_owned(),
                Some(v) => match serde_json::to_string(v.get_ref()) {
                    Ok(s) if !matches!(v.get_ref(), toml::Value::Datetime(_)) => s,
                    _ => {
                        d.at(
                            Some(v.span()),
                            format!("{key}.replacement"),
                            "must be a string, number, boolean, array or table",
                        );
                        "null".to_owned()
                    }
                },
            };
            Action::Redact(Arc::from(raw))
        }
        "mask" => {
            let style = match f.mask.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
                None | Some(("last", _)) => {
                    let n = count(d, &f.keep_last, &format!("{key}.keep_last"), 4, (0, 64));
                    MaskStyle::KeepLast(n)
                }
                Some(("email", _)) => MaskStyle::Email,
                Some((_, span)) => {
                    d.at(Some(span), format!("{key}.mask"), "must be \"last\" (keep the last `keep_last` characters) or \"email\" (keep the domain)");
                    MaskStyle::KeepLast(4)
                }
            };
            if style == MaskStyle::Email {
                extra(
                    d,
                    "keep_last",
                    f.keep_last.is_some(),
                    f.keep_last.as_ref().map(|k| k.span()),
                );
            }
            extra(
                d,
                "replacement",
                f.replacement.is_some(),
                f.replacement.as_ref().map(|k| k.span()),
            );
            return Some(Action::Mask(style));
        }
        other => {
            d.at(span, format!("{key}.action"), format!("unknown action `{other}`: use encrypt, encrypt-deterministic, redact, drop, mask or hash"));
            return None;
        }
    };
    if !matches!(action, Action::Redact(_)) {
        extra(
            d,
            "replacement",
            f.replacement.is_some(),
            f.replacement.as_ref().map(|k| k.span()),
        );
    }
    extra(
        d,
        "keep_last",
        f.keep_last.is_some(),
        f.keep_last.as_ref().map(|k| k.span()),
    );
    extra(
        d,
        "mask",
        f.mask.is_some(),
        f.mask.as_ref().map(|k| k.span()),
    );
    Some(action)
}
