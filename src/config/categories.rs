//! Data categories: the fideslang `user.*` vocabulary, with short aliases, so the flow
//! map speaks the language privacy tooling already uses. Unknown names are refused with
//! a did-you-mean.

/// The categories we accept (fideslang data categories under `user`).
pub const CATEGORIES: &[&str] = &[
    "user",
    "user.account",
    "user.account.settings",
    "user.account.username",
    "user.authorization",
    "user.authorization.credentials",
    "user.authorization.password",
    "user.behavior",
    "user.behavior.browsing_history",
    "user.behavior.purchase_history",
    "user.behavior.search_history",
    "user.biometric",
    "user.childrens",
    "user.contact",
    "user.contact.address",
    "user.contact.address.city",
    "user.contact.address.country",
    "user.contact.address.postal_code",
    "user.contact.address.state",
    "user.contact.address.street",
    "user.contact.email",
    "user.contact.fax_number",
    "user.contact.phone_number",
    "user.content",
    "user.content.private",
    "user.criminal_history",
    "user.demographic",
    "user.demographic.date_of_birth",
    "user.demographic.gender",
    "user.demographic.language",
    "user.device",
    "user.device.cookie_id",
    "user.device.device_id",
    "user.device.ip_address",
    "user.financial",
    "user.financial.bank_account",
    "user.financial.credit_card",
    "user.government_id",
    "user.government_id.national_identification_number",
    "user.government_id.passport_number",
    "user.health_and_medical",
    "user.location",
    "user.location.imprecise",
    "user.location.precise",
    "user.name",
    "user.name.first",
    "user.name.last",
    "user.privacy_preferences",
    "user.unique_id",
    "user.unique_id.pseudonymous",
];

/// Short names people write in small configs.
pub const ALIASES: &[(&str, &str)] = &[
    ("contact", "user.contact"),
    ("email", "user.contact.email"),
    ("phone", "user.contact.phone_number"),
    ("address", "user.contact.address"),
    ("name", "user.name"),
    ("identity", "user.name"),
    ("payment", "user.financial"),
    ("card", "user.financial.credit_card"),
    ("bank", "user.financial.bank_account"),
    ("preferences", "user.account.settings"),
    ("birthdate", "user.demographic.date_of_birth"),
    ("ip", "user.device.ip_address"),
    ("credentials", "user.authorization.credentials"),
    ("health", "user.health_and_medical"),
    ("id", "user.unique_id"),
];

/// Resolves a name or alias to its full category, or says what was probably meant.
pub fn resolve(name: &str) -> Result<&'static str, String> {
    if let Some(c) = CATEGORIES.iter().find(|c| **c == name) {
        return Ok(c);
    }
    if let Some((_, c)) = ALIASES.iter().find(|(a, _)| *a == name) {
        return Ok(c);
    }
    let candidates = CATEGORIES
        .iter()
        .copied()
        .chain(ALIASES.iter().map(|(a, _)| *a));
    let best = candidates.map(|c| (distance(name, c), c)).min();
    Err(match best {
        Some((d, c)) if d <= 3 => format!("unknown category `{name}`: did you mean `{c}`?"),
        _ => format!("unknown category `{name}`: use a fideslang `user.*` category or an alias (email, name, address, payment, ...)"),
    })
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_suggests() {
        assert_eq!(resolve("email").unwrap(), "user.contact.email");
        assert_eq!(
            resolve("user.financial.bank_account").unwrap(),
            "user.financial.bank_account"
        );
        let e = resolve("user.contact.emial").unwrap_err();
        assert!(e.contains("did you mean `user.contact.email`"), "{e}");
        assert!(resolve("zzzzzzzzzz")
            .unwrap_err()
            .contains("unknown category"));
    }
}
