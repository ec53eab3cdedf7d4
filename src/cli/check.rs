//! `tarnkappe check` (config, keyring, privacy assessment) and `tarnkappe audit verify`.
//! The assessment names routes, labels, categories and actions, never a key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::units::format_duration;
use crate::config::Config;
use crate::transform::Action;

use super::{load_or_exit, EXIT_DATAERR};

/// Categories a shop API typically carries; those no rule covers are listed as plaintext.
const COMMON: &[&str] = &[
    "user.contact.email",
    "user.name",
    "user.contact.address",
    "user.contact.phone_number",
    "user.financial.credit_card",
    "user.financial.bank_account",
    "user.demographic.date_of_birth",
];

/// Validates and prints the assessment.
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = match load_or_exit(path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    print!("{}", assessment(&loaded.config));
    println!(
        "keyring: {} key(s), key {} active",
        loaded.keyring.list().len(),
        loaded.keyring.active_id()
    );
    println!("ok: {} is valid", path.display());
    Ok(ExitCode::SUCCESS)
}

fn describe(a: &Action) -> &'static str {
    match a {
        Action::Encrypt => "encrypted (random nonce; the backend holds ciphertext only)",
        Action::EncryptDeterministic => {
            "encrypted deterministically (equal values look equal, so the backend can look them up)"
        }
        Action::Redact(_) => "redacted (the backend never sees it; not recoverable)",
        Action::Drop => "dropped (the backend never sees it)",
        Action::Mask(_) => "masked (a fragment stays readable; not recoverable)",
        Action::Hash => "pseudonymised (keyed hash; same input, same pseudonym; not recoverable)",
    }
}

/// The privacy assessment text.
pub fn assessment(c: &Config) -> String {
    let mut out = String::from("privacy assessment\n");
    let mut by_category: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
    let mut warnings = Vec::new();
    for r in c.router.routes() {
        let methods = if r.methods.is_empty() {
            "ANY".to_owned()
        } else {
            r.methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str(&format!(
            "  route {} ({methods} {})\n",
            r.name, r.template.text
        ));
        if let Some(allowed) = &r.reveal_to {
            let others = match r.conceal {
                crate::route::Conceal::Marker => "the marker",
                crate::route::Conceal::Ciphertext => "the stored ciphertext",
            };
            let names: Vec<&str> = allowed.iter().map(|a| &**a).collect();
            out.push_str(&format!(
                "    plaintext back only to callers: {}; every other caller gets {others}\n",
                if names.is_empty() {
                    "(none)".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        }
        if !r.has_rules() {
            out.push_str("    no field rules: bodies pass through unchanged\n");
            warnings.push(format!(
                "route {} has no field rules: anything it carries reaches the backend in plaintext",
                r.name
            ));
        } else if r.rules.fields.is_empty() {
            out.push_str("    query rules only: bodies pass through unchanged\n");
        }
        for (f, p) in r.rules.fields.iter().zip(&r.rules.paths) {
            out.push_str(&format!(
                "    {} [{}] {}: {}\n",
                p.source,
                f.label,
                f.category,
                describe(&f.action)
            ));
            let entry = by_category.entry(&f.category).or_default();
            if !entry.contains(&f.action.name()) {
                entry.push(f.action.name());
            }
        }
        for (f, p) in r.query_rules.fields.iter().zip(&r.query_rules.paths) {
            let name = p.single_name().unwrap_or("?");
            out.push_str(&format!(
                "    query ?{name} [{}] {}: {}\n",
                f.label,
                f.category,
                describe(&f.action)
            ));
        }
        let body_methods = [http::Method::POST, http::Method::PUT, http::Method::PATCH];
        let missing: Vec<&str> = body_methods
            .iter()
            .filter(|m| r.has_rules() && !r.methods.is_empty() && !r.methods.contains(m))
            .map(http::Method::as_str)
            .collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "route {} does not cover {}: such requests to its path pass without its rules",
                r.name,
                missing.join(", ")
            ));
        }
        if r.pass_other_types {
            warnings.push(format!(
                "route {} forwards bodies of types it does not parse (pass_other_types)",
                r.name
            ));
        }
    }
    out.push_str("  categories protected:\n");
    for (cat, actions) in &by_category {
        out.push_str(&format!("    {cat}: {}\n", actions.join(", ")));
    }
    let plain: Vec<&str> = COMMON
        .iter()
        .copied()
        .filter(|c| {
            !by_category
                .keys()
                .any(|k| k.starts_with(c) || c.starts_with(k))
        })
        .collect();
    if !plain.is_empty() {
        out.push_str(&format!(
            "  stay plaintext if your API carries them: {}\n",
            plain.join(", ")
        ));
    }
    match &c.flow_log {
        None => {
            warnings.push("no [flow_log]: exchanges are not recorded for the data-flow map".into())
        }
        Some(f) => {
            if let Some(keep) = f.delete_after {
                if f.rotate_every.is_zero() {
                    warnings.push(
                        "flow_log.delete_after with rotate_every = 0: the current file is rotated by size only, so its events can outlive delete_after"
                            .into(),
                    );
                } else if f.rotate_every > keep {
                    warnings.push(format!(
                        "flow_log.rotate_every ({}) is longer than delete_after ({}): events wait in the current file until it is rotated, so they can outlive delete_after",
                        format_duration(f.rotate_every),
                        format_duration(keep)
                    ));
                }
            }
            out.push_str(&format!(
                "  flow log: {}; {}\n",
                f.path.display(),
                match f.delete_after {
                    Some(d) => format!(
                        "rotated files deleted once their last event is {} old (delete_after)",
                        format_duration(d)
                    ),
                    None => "rotated files kept until you delete them (see flow_log.delete_after)"
                        .to_owned(),
                }
            ))
        }
    }
    if c.admin.is_none() {
        warnings.push("no [admin] listener: no metrics or health endpoints".into());
    }
    for w in warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}

/// `audit verify`.
pub fn verify(files: &[PathBuf], config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let files: Vec<PathBuf> = match files {
        [one] if one.is_file() => crate::flowlog::files_in_order(one),
        many => many.to_vec(),
    };
    let key = match config {
        Some(path) => match load_or_exit(path) {
            Ok(l) => Some(l.keyring.derive_secret("flow-log-hmac")),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    match crate::flowlog::verify(&files, key.as_deref()) {
        Ok(report) => {
            println!(
                "ok: {} event(s) in {} file(s), {} instance(s), {} .. {}",
                report.events,
                report.files,
                report.instances,
                report.first_time.as_deref().unwrap_or("-"),
                report.last_time.as_deref().unwrap_or("-")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(brk) => {
            eprintln!("{brk}");
            Ok(ExitCode::from(EXIT_DATAERR))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn assess(flow_log: &str) -> String {
        let text = format!(
            "[listen]\naddress = \"127.0.0.1:8080\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
             [keys]\nkeyring = \"k.toml\"\n[flow_log]\npath = \"flow.jsonl\"\n{flow_log}\n"
        );
        let c = crate::config::compile(&text, "t.toml", Path::new("/t"), Path::new("/t/t.toml"))
            .unwrap();
        assessment(&c)
    }

    #[test]
    fn the_flow_logs_retention_is_stated_and_a_period_it_cannot_keep_is_warned_about() {
        let kept = assess("");
        assert!(
            kept.contains("  flow log: /t/flow.jsonl; rotated files kept until you delete them"),
            "{kept}"
        );
        let fine = assess("delete_after = \"400d\"");
        assert!(
            fine.contains("rotated files deleted once their last event is 400d old"),
            "{fine}"
        );
        assert!(!fine.contains("outlive"), "{fine}");
        let slow = assess("delete_after = \"12h\"\nrotate_every = \"1d\"");
        assert!(
            slow.contains("warning: flow_log.rotate_every (1d) is longer than delete_after (12h)"),
            "{slow}"
        );
        let never = assess("delete_after = \"30d\"\nrotate_every = \"0s\"");
        assert!(
            never.contains("warning: flow_log.delete_after with rotate_every = 0"),
            "{never}"
        );
    }
}
