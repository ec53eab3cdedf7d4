//! The code must reproduce every token of docs/ciphertext-vectors.json exactly (the
//! vectors come from an independent implementation) and open each one back.

use std::collections::BTreeSet;

use super::{fixture, hex, vectors_doc};
use crate::crypto::{label_tag, parse_token, Mode, ValueType};

struct Vector {
    name: String,
    key_id: u32,
    label: String,
    label_tag: String,
    mode: Mode,
    value_type: ValueType,
    plaintext: String,
    nonce: Option<[u8; 12]>,
    token: String,
}

fn vectors() -> Vec<Vector> {
    let doc = vectors_doc();
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().expect(k).to_owned();
    let char_of = |v: &serde_json::Value, k: &str| text(v, k).chars().next().expect(k);
    doc["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| Vector {
            name: text(v, "name"),
            key_id: u32::try_from(v["key_id"].as_u64().expect("key_id")).expect("u32"),
            label: text(v, "label"),
            label_tag: text(v, "label_tag"),
            mode: Mode::from_char(char_of(v, "mode")).expect("mode"),
            value_type: ValueType::from_char(char_of(v, "type")).expect("type"),
            plaintext: text(v, "plaintext"),
            nonce: v["nonce_hex"]
                .as_str()
                .map(|h| hex(h).try_into().expect("12-byte nonce")),
            token: text(v, "token"),
        })
        .collect()
}

#[test]
fn every_vector_seals_to_its_token() {
    let keyring = fixture();
    for v in vectors() {
        assert_eq!(v.mode == Mode::Random, v.nonce.is_some(), "{}", v.name);
        let token = keyring
            .seal_with(
                v.key_id,
                v.mode,
                &v.label,
                v.value_type,
                v.plaintext.as_bytes(),
                v.nonce,
            )
            .expect("seal");
        assert_eq!(token, v.token, "vector {:?}", v.name);
    }
}

#[test]
fn deterministic_vectors_of_the_active_key_come_out_of_plain_seal() {
    let keyring = fixture();
    let mut checked = 0;
    for v in vectors() {
        if v.mode == Mode::Deterministic && v.key_id == keyring.active_id() {
            let token = keyring
                .seal(v.mode, &v.label, v.value_type, v.plaintext.as_bytes())
                .expect("seal");
            assert_eq!(token, v.token, "vector {:?}", v.name);
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

#[test]
fn every_vector_opens_to_its_plaintext() {
    let keyring = fixture();
    for v in vectors() {
        let (value_type, plaintext) = keyring.open(&v.label, &v.token).expect(&v.name);
        assert_eq!(value_type, v.value_type, "vector {:?}", v.name);
        assert_eq!(
            &plaintext[..],
            v.plaintext.as_bytes(),
            "vector {:?}",
            v.name
        );
    }
}

#[test]
fn every_vector_parses_into_its_fields() {
    for v in vectors() {
        let h = parse_token(&v.token).expect(&v.name);
        assert_eq!(h.key_id, v.key_id);
        assert_eq!(h.mode, v.mode);
        assert_eq!(h.value_type, v.value_type);
        assert_eq!(h.label_tag, v.label_tag);
        assert_eq!(label_tag(&v.label), v.label_tag, "vector {:?}", v.name);
        assert_eq!(format!("{}.{}", h.header, h.body), v.token);
    }
}

#[test]
fn vectors_cover_every_type_both_modes_two_keys_unicode_and_dotted_labels() {
    let all = vectors();
    assert!(all.len() >= 8);
    let types: BTreeSet<char> = all.iter().map(|v| v.value_type.as_char()).collect();
    assert_eq!(types.len(), ValueType::ALL.len());
    let modes: BTreeSet<char> = all.iter().map(|v| v.mode.as_char()).collect();
    assert_eq!(modes.len(), 2);
    let keys: BTreeSet<u32> = all.iter().map(|v| v.key_id).collect();
    assert!(keys.len() >= 2);
    assert!(all.iter().any(|v| !v.plaintext.is_ascii()));
    assert!(all.iter().any(|v| v.label.matches('.').count() >= 2));
    assert!(all.iter().any(|v| v.plaintext.is_empty()));
}

#[test]
fn pseudonym_vectors() {
    let keyring = fixture();
    let doc = vectors_doc();
    let list = doc["pseudonyms"].as_array().expect("pseudonyms");
    assert!(list.len() >= 3);
    for p in list {
        let plaintext = p["plaintext"].as_str().expect("plaintext");
        let expected = p["pseudonym"].as_str().expect("pseudonym");
        assert_eq!(keyring.pseudonym(plaintext.as_bytes()), expected);
    }
}

#[test]
fn fixture_secrets_are_the_published_hex() {
    let keyring = fixture();
    let doc = vectors_doc();
    let secrets = &doc["secrets_hex"];
    let key = |id: u32| {
        keyring
            .keys()
            .iter()
            .find(|k| k.id == id)
            .expect("key")
            .secret()
            .to_vec()
    };
    assert_eq!(key(1), hex(secrets["key_1"].as_str().expect("key_1")));
    assert_eq!(key(2), hex(secrets["key_2"].as_str().expect("key_2")));
    assert_eq!(
        keyring.pseudonym_key().secret().to_vec(),
        hex(secrets["pseudonym_secret"].as_str().expect("pseudonym"))
    );
}
