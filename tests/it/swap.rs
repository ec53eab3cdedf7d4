//! Ciphertext moved around inside the database by someone who can write to it: into
//! another field it opens to the documented marker, never to the other field's plaintext;
//! changed in any part it opens to the marker; moved to another record it (currently)
//! opens, because tokens are bound to a field label, not to a record.

use tarnkappe::crypto::MARKER;

use crate::support::{contains, member_token, Stack, CUSTOMERS_ROUTE};

const ANN: &str = r#"{"email":"ann@example.com","name":"Ann Example","plan":"basic"}"#;
const BOB: &str = r#"{"email":"bob@example.net","name":"Bob Sample","plan":"gold"}"#;

/// Overwrites a stored document, as an attacker with database access would.
fn overwrite(stack: &Stack, id: i64, doc: &str) {
    let n = stack
        .db_rw()
        .execute("UPDATE customers SET doc = ?1 WHERE id = ?2", (doc, id))
        .expect("update");
    assert_eq!(n, 1);
}

fn swap(doc: &str, a: &str, b: &str) -> String {
    doc.replace(a, "\u{1}").replace(b, a).replace('\u{1}', b)
}

/// Swaps the email and name tokens of a stored customer and reads it back.
async fn read_with_email_and_name_swapped(stack: &Stack) -> crate::support::Reply {
    let id = stack.create("customers", ANN).await;
    let doc = stack.stored("customers", id);
    let email = member_token(&doc, "/email");
    let name = member_token(&doc, "/name");
    overwrite(stack, id, &swap(&doc, &email, &name));
    stack.get(&format!("/api/customers/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertexts_swapped_between_fields_open_to_the_marker() {
    let stack = Stack::builder().routes(CUSTOMERS_ROUTE).start().await;
    let reply = read_with_email_and_name_swapped(&stack).await;
    assert_eq!(
        reply.text(),
        format!(r#"{{"email":"{MARKER}","name":"{MARKER}","plan":"basic"}}"#)
    );
    assert!(!contains(&reply.body, "ann@example.com"));
    assert!(!contains(&reply.body, "Ann Example"));
}

/// Same swap, with the routes of `config/demo.toml`: the subscriptions route's `$..email`
/// rule also ends in `email`, so no single label owns that member name and a token of any
/// label opens in an `email` slot of any route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertexts_swapped_between_fields_open_to_the_marker_when_routes_share_a_member_name() {
    let stack = Stack::start().await;
    let reply = read_with_email_and_name_swapped(&stack).await;
    assert!(!contains(&reply.body, "Ann Example"), "{}", reply.text());
    assert_eq!(
        reply.text(),
        format!(r#"{{"email":"{MARKER}","name":"{MARKER}","plan":"basic"}}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_ciphertext_opens_to_the_marker() {
    let stack = Stack::start().await;
    let id = stack.create("customers", ANN).await;
    let doc = stack.stored("customers", id);
    let name = member_token(&doc, "/name");
    let (header, body) = name.rsplit_once('.').expect("token body");
    let flipped = {
        // A character in the middle of the body: the token keeps its shape but not its tag.
        let mut b = body.as_bytes().to_vec();
        b[10] = if b[10] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).expect("ascii")
    };
    let changes = [
        ("type in the header", name.replacen(".rs.", ".rn.", 1)),
        ("key id in the header", name.replacen("tk1.1.", "tk1.7.", 1)),
        ("sealed bytes", format!("{header}.{flipped}")),
    ];
    for (what, changed) in changes {
        assert_ne!(changed, name, "{what} changed");
        overwrite(&stack, id, &doc.replace(&name, &changed));
        let reply = stack.get(&format!("/api/customers/{id}")).await;
        let v = reply.json();
        assert_eq!(v["name"], MARKER, "{what}");
        assert_eq!(
            v["email"], "ann@example.com",
            "{what}: the rest still opens"
        );
        assert!(!contains(&reply.body, "Ann Example"), "{what}");
    }
}

/// Record binding is not implemented: a token is bound to its field's label (and its
/// header), not to the row it was written into. Swapping the same field between two
/// records therefore opens, and each record shows the other's value. This test pins the
/// current behaviour; if record binding is added, it should turn into a marker test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertexts_swapped_between_records_open_with_the_same_label() {
    let stack = Stack::start().await;
    let ann = stack.create("customers", ANN).await;
    let bob = stack.create("customers", BOB).await;
    let ann_doc = stack.stored("customers", ann);
    let bob_doc = stack.stored("customers", bob);
    let ann_email = member_token(&ann_doc, "/email");
    let bob_email = member_token(&bob_doc, "/email");
    overwrite(&stack, ann, &ann_doc.replace(&ann_email, &bob_email));
    overwrite(&stack, bob, &bob_doc.replace(&bob_email, &ann_email));
    let ann_back = stack.get(&format!("/api/customers/{ann}")).await.json();
    let bob_back = stack.get(&format!("/api/customers/{bob}")).await.json();
    assert_eq!(ann_back["email"], "bob@example.net");
    assert_eq!(bob_back["email"], "ann@example.com");
    assert_eq!(ann_back["name"], "Ann Example");
}

/// A member that no rule names has no owning label, so a token moved there opens under
/// its own label (the response opener opens every token of ours anywhere in the body).
/// Only a move into another *configured* field's slot is caught. This pins the current
/// behaviour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertext_moved_to_a_member_no_rule_names_opens_under_its_own_label() {
    let stack = Stack::start().await;
    let id = stack.create("customers", ANN).await;
    let doc = stack.stored("customers", id);
    let email = member_token(&doc, "/email");
    overwrite(
        &stack,
        id,
        &doc.replace("\"basic\"", &format!("\"{email}\"")),
    );
    let v = stack.get(&format!("/api/customers/{id}")).await.json();
    assert_eq!(v["plan"], "ann@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_ciphertext_on_a_fail_route_is_a_502_problem_without_plaintext() {
    let route = CUSTOMERS_ROUTE.replacen(
        "name = \"customers\"\n",
        "name = \"customers\"\non_open_failure = \"fail\"\n",
        1,
    );
    assert_ne!(route, CUSTOMERS_ROUTE);
    let stack = Stack::builder().routes(&route).start().await;
    let id = stack.create("customers", ANN).await;
    let path = format!("/api/customers/{id}");
    assert_eq!(stack.get(&path).await.text(), ANN);
    let doc = stack.stored("customers", id);
    let name = member_token(&doc, "/name");
    overwrite(
        &stack,
        id,
        &doc.replace(&name, &name.replacen(".rs.", ".rn.", 1)),
    );
    let reply = stack.get(&path).await;
    reply.assert_problem(http::StatusCode::BAD_GATEWAY, "open_failed");
    assert!(!contains(&reply.body, "ann@example.com"));
}
