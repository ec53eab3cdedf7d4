//! The written record: exactly the documented members, in the documented order, and no
//! string that did not come from the config, a closed set, a sanitized id or the chain.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

const MEMBERS: [&str; 25] = [
    "v",
    "time",
    "seq",
    "instance",
    "request_id",
    "route",
    "method",
    "path_template",
    "caller",
    "client",
    "upstream",
    "status",
    "outcome",
    "reason",
    "fields",
    "open_failures",
    "uncovered",
    "duration_us",
    "upstream_us",
    "transform_us",
    "bytes_in",
    "bytes_out",
    "mac",
    "prev",
    "hash",
];

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn record_holds_only_documented_members_in_order_and_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let mut cfg = config(&path);
    cfg.hmac_key = Some(zeroize::Zeroizing::new([3u8; 32]));
    let log = FlowLog::start(cfg).unwrap();
    let mut refused = FlowEvent::new(RequestId::generate(), MethodName::new("X-SECRET"));
    refused.status = 413;
    refused.outcome = Outcome::Refused(RefuseReason::TooLarge);
    refused.uncovered = vec![ConfigStr::new("iban_like")];
    log.emit(event(1));
    log.emit(refused);
    assert!(log.flush(WAIT));
    log.shutdown(WAIT);

    let lines = lines(&path);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let mut at = 0;
        for m in MEMBERS {
            let found = line[at..]
                .find(&format!("\"{m}\":"))
                .unwrap_or_else(|| panic!("{m} in order"));
            at += found;
        }
        let v: Value = serde_json::from_str(line).unwrap();
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, MEMBERS.into_iter().collect());
        for f in v["fields"].as_array().unwrap() {
            let keys: BTreeSet<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                ["action", "category", "count", "direction", "label"].into()
            );
        }
        let mut seen = Vec::new();
        strings(&v, &mut seen);
        let id = v["request_id"].as_str().unwrap().to_string();
        let allowed = [
            "test-1",
            "signup",
            "/users/{id}",
            "support",
            "203.0.113.0/24",
            "app",
            "POST",
            "OTHER",
            "forwarded",
            "refused",
            "too_large",
            "email",
            "user.contact.email",
            "encrypt",
            "request",
            "iban",
            "user.financial.bank_account",
            "open",
            "response",
            "iban_like",
        ];
        for s in seen {
            let chainish = s.len() == 64 || s.ends_with('Z');
            assert!(
                allowed.contains(&s.as_str()) || s == id || chainish,
                "unexpected string {s:?}"
            );
        }
    }
    let second: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["method"], "OTHER");
    assert_eq!(second["outcome"], "refused");
    assert_eq!(second["reason"], "too_large");
    assert_eq!(second["route"], Value::Null);
    assert_eq!(second["mac"], true);
}

#[test]
fn plain_records_omit_mac_and_parse_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    write_events(config(&path), 1, 2);
    let evs = parsed(&path);
    assert!(!lines(&path)[0].contains("\"mac\""));
    assert_eq!(evs[0].seq, 1);
    assert_eq!(evs[0].prev, GENESIS_PREV);
    assert_eq!(evs[1].prev, evs[0].hash);
    assert_eq!(evs[1].fields[1].direction, Direction::Response);
    assert_eq!(evs[1].fields[1].count, 2);
    assert_eq!(evs[0].instance, "test-1");
    assert!(evs[0].time.ends_with('Z') && evs[0].time.len() == 24);
}
