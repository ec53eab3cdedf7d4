//! Environment overrides, as Docker users expect: `TARNKAPPE_UPSTREAM__URL=...` sets
//! `upstream.url`; `__` separates levels, a number indexes an array
//! (`TARNKAPPE_ROUTE__0__PATH`). A value that parses as TOML (number, boolean, array) is
//! taken as such, anything else as a string. Values are never logged.

use toml::{Table, Value};

/// The overrides present in the environment: (key path, value).
pub fn overrides() -> Vec<(Vec<String>, String)> {
    let mut out: Vec<_> = std::env::vars()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("TARNKAPPE_")?;
            rest.contains("__")
                .then(|| (rest.split("__").map(str::to_ascii_lowercase).collect(), v))
        })
        .collect();
    out.sort();
    out
}

/// Applies overrides to config text; returns the merged text.
pub fn apply(text: &str, overrides: &[(Vec<String>, String)]) -> Result<String, String> {
    let mut table: Table = toml::from_str(text).map_err(|e| {
        format!(
            "cannot apply environment overrides to an invalid file: {}",
            e.message()
        )
    })?;
    for (path, value) in overrides {
        let name = format!(
            "TARNKAPPE_{}",
            path.iter()
                .map(|p| p.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join("__")
        );
        set(&mut table, path, parse_value(value)).map_err(|m| format!("{name}: {m}"))?;
    }
    toml::to_string(&table).map_err(|e| format!("cannot merge environment overrides: {e}"))
}

fn parse_value(v: &str) -> Value {
    match toml::from_str::<Table>(&format!("v = {v}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(v.to_owned())),
        Err(_) => Value::String(v.to_owned()),
    }
}

fn set(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty key")?;
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    let slot = table
        .entry(first.clone())
        .or_insert_with(|| Value::Table(Table::new()));
    set_in(slot, rest, value)
}

fn set_in(slot: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    match slot {
        Value::Table(t) => set(t, path, value),
        Value::Array(items) => {
            let (first, rest) = path.split_first().ok_or("empty key")?;
            let i: usize = first
                .parse()
                .map_err(|_| format!("`{first}` is not an array index"))?;
            let item = items
                .get_mut(i)
                .ok_or_else(|| format!("index {i} is past the end of the array"))?;
            if rest.is_empty() {
                *item = value;
                Ok(())
            } else {
                set_in(item, rest, value)
            }
        }
        _ => Err("sets a key below a plain value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_nested_and_indexed_keys() {
        let text = "[upstream]\nurl = \"http://a:1\"\n[[route]]\nname = \"r\"\npath = \"/x\"\n";
        let o = vec![
            (vec!["upstream".into(), "url".into()], "http://b:2".into()),
            (vec!["route".into(), "0".into(), "path".into()], "/y".into()),
            (vec!["limits".into(), "max_depth".into()], "12".into()),
        ];
        let merged: Table = toml::from_str(&apply(text, &o).unwrap()).unwrap();
        assert_eq!(merged["upstream"]["url"].as_str(), Some("http://b:2"));
        assert_eq!(merged["route"][0]["path"].as_str(), Some("/y"));
        assert_eq!(merged["limits"]["max_depth"].as_integer(), Some(12));
        assert!(apply(
            text,
            &[(vec!["route".into(), "5".into(), "path".into()], "/z".into())]
        )
        .is_err());
    }
}
