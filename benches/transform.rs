//! Criterion bench of the transform stage alone, without sockets: the request transform
//! (strict scan, seal five fields, splice) and the response opening (find and open the
//! five ciphertexts) of a customer document of 1 KB, 64 KB and 1 MB. The larger ones
//! carry the same five sensitive fields plus plain `items` and `notes` arrays, so they
//! show what the untouched bytes cost. Throughput is reported in body bytes.
//!
//! The documents are synthetic and hold no real personal data. Run with
//! `cargo bench --bench transform`; the load test through sockets is scripts/load.sh.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use tarnkappe::config::{self, Config};
use tarnkappe::crypto::Keyring;
use tarnkappe::transform::request::transform_json;
use tarnkappe::transform::response::open_json;
use tarnkappe::transform::RuleSet;

/// The five sensitive fields of the customer route, as an operator would write them.
const CONFIG: &str = concat!(
    r#"
[listen]
address = "127.0.0.1:0"

[upstream]
url = "http://127.0.0.1:9"

[[route]]
name = "customers"
methods = ["POST"]
path = "/customers/{*rest}"

"#,
    include_str!("../tests/fixtures/customer-fields.toml")
);

/// Body sizes benched: a typical API document, a large one, and one at the buffered-body scale.
const SIZES: [(&str, usize); 3] = [("1KB", 1 << 10), ("64KB", 64 << 10), ("1MB", 1 << 20)];

/// A customer document of about `target` bytes: the five sensitive fields first, then
/// plain order lines and notes until the size is reached.
fn document(target: usize) -> Vec<u8> {
    let mut s = String::with_capacity(target + 256);
    s.push_str(concat!(
        r#"{"id":"cus_000042","email":"jane.doe@example.com","name":"Jane Doe","#,
        r#""address":{"street":"12 Harbour Lane","city":"Kiel","zip":"24103","country":"DE"},"#,
        r#""phone":"+49 431 5550123","#,
        r#""payment":{"card_number":"4111111111111111","expiry":"12/29","brand":"visa"},"#,
        r#""created":"2024-05-01T10:00:00Z","marketing_opt_in":false,"tier":"gold","#,
        r#""items":["#
    ));
    let mut i = 0;
    // One order line is about 120 bytes; the 1 KB document keeps a few for realism.
    while s.len() + 400 < target {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"sku":"SKU-{i:06}","title":"Stoneware mug, blue, set of {}","qty":{},"price":{}.{:02},"warehouse":"KIE-{}"}}"#,
            i % 6 + 1,
            i % 5 + 1,
            i % 90 + 5,
            i % 100,
            i % 4
        );
        i += 1;
    }
    s.push_str(r#"],"notes":["#);
    let mut j = 0;
    while s.len() + 3 < target || j == 0 {
        if j > 0 {
            s.push(',');
        }
        let _ = write!(s, r#""delivery note {j}: leave at the back door""#);
        j += 1;
    }
    s.push_str("]}");
    s.into_bytes()
}

struct Fixture {
    config: Config,
    keyring: Keyring,
}

impl Fixture {
    fn new() -> Fixture {
        let config = config::compile(
            CONFIG,
            "bench.toml",
            Path::new("."),
            Path::new("bench.toml"),
        )
        .unwrap_or_else(|e| panic!("bench config does not compile: {e}"));
        let keyring = Keyring::generate().expect("generating a keyring");
        Fixture { config, keyring }
    }

    fn rules(&self) -> &RuleSet {
        &self.config.router.routes()[0].rules
    }
}

fn request_transform(c: &mut Criterion) {
    let fx = Fixture::new();
    let limits = fx.config.limits.json;
    let mut group = c.benchmark_group("request_transform");
    for (name, size) in SIZES {
        let doc = document(size);
        let out = transform_json(&doc, fx.rules(), &fx.keyring, limits).expect("transform");
        assert_eq!(out.counts, vec![1; 5], "every field is sealed once");
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &doc, |b, doc| {
            b.iter(|| transform_json(black_box(doc), fx.rules(), &fx.keyring, limits))
        });
    }
    group.finish();
}

fn response_open(c: &mut Criterion) {
    let fx = Fixture::new();
    let limits = fx.config.limits.json;
    let mut group = c.benchmark_group("response_open");
    for (name, size) in SIZES {
        let plain = document(size);
        // What the backend stored and now answers with: the sealed document.
        let sealed = transform_json(&plain, fx.rules(), &fx.keyring, limits)
            .expect("transform")
            .body;
        let opened = open_json(&sealed, &fx.config.labels, &fx.keyring, limits).expect("open");
        assert!(opened.failures.is_empty(), "every token opens");
        assert_eq!(opened.body.as_deref(), Some(&plain[..]), "round trip");
        group.throughput(Throughput::Bytes(sealed.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &sealed, |b, sealed| {
            b.iter(|| open_json(black_box(sealed), &fx.config.labels, &fx.keyring, limits))
        });
    }
    group.finish();
}

fn short() -> Criterion {
    // Six benches in about a minute on the 2-core machine.
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// Both groups with the short settings (what `criterion_group!` would write, plus a doc).
fn benches() {
    let mut c = short().configure_from_args();
    request_transform(&mut c);
    response_open(&mut c);
}

criterion_main!(benches);
