//! `baton serve` on several hosts sharing one PostgreSQL store: API keys made once work on
//! every server, a key's budget is one shared ledger none of them can overspend, a revoked key
//! stops everywhere at once, and a completion cached by one server is served by another.

use std::process::Command;

use serde_json::{Value, json};

use super::postgres::Postgres;
use crate::common::*;
use crate::model_server::{ModelServer, Reply};
use crate::serve::{Api, Served, answered_or_refused, ask_once};

/// `baton` with the store at `url` and its local files (`serve.db`) in `data`.
fn with_store(url: &str, data: &std::path::Path) -> Command {
    let mut command = baton();
    command.env("BATON_STORE", url).env("XDG_DATA_HOME", data);
    command
}

#[test]
fn two_servers_share_keys_a_budget_never_overspent_and_the_cache() {
    let pg = Postgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let upstream = ModelServer::start(vec![], Reply::ok("fine", (10, 9)));
    let policy = write_policy(
        dir.path(),
        &format!("{}\n[cache]\nenabled = true\n", upstream.policy("test", "")),
    );
    let policy = policy.to_str().unwrap();
    // Each server has local files of its own: only the store is shared.
    let (here, there) = (dir.path().join("here"), dir.path().join("there"));
    let made = with_store(&url, &here)
        .args(["keys", "create", "--name", "tight", "--scopes", "llm"])
        .args(["--budget", "tokens=300"])
        .output()
        .unwrap();
    let key = text_output(&made).trim().to_string();
    let mut one = with_store(&url, &here);
    one.args(["--policy", policy]);
    let mut other = with_store(&url, &there);
    other.args(["--policy", policy]);
    let servers = [Served::spawn(one, &[]), Served::spawn(other, &[])];

    // 64 requests at once, half to each server, each question new.
    let ok = answered_or_refused(64, |client, i| {
        ask_once(client, &servers[i % 2], &key, &format!("question {i}"))
    });
    assert!(ok * 19 <= 300, "{ok} answers of 19 tokens overspend 300");
    assert_eq!(upstream.requests().len() as u64, ok);
    // The shared ledger has it already, with both servers still running.
    let listed = with_store(&url, &there)
        .args(["keys", "ls", "--json"])
        .output()
        .unwrap();
    let keys = json_output(&listed);
    assert_eq!(keys[0]["spent"]["tokens"], ok * 19, "{keys}");
    assert_eq!(keys[0]["spent"]["calls"], ok, "{keys}");

    // An answer one server got from the model, the other serves from the shared cache.
    let free = with_store(&url, &here)
        .args(["keys", "create", "--name", "free", "--scopes", "llm"])
        .output()
        .unwrap();
    let free = text_output(&free).trim().to_string();
    let asked = upstream.requests().len();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answers: Vec<Value> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut answers = Vec::new();
        for served in &servers {
            let response = ask_once(&client, served, &free, "the shared question")
                .send()
                .await;
            answers.push(response.unwrap().json().await.unwrap());
        }
        answers
    });
    assert_eq!(upstream.requests().len(), asked + 1, "{answers:?}");
    assert_eq!(answers[0]["choices"], answers[1]["choices"]);

    // Revoked through one host, the key stops on both servers at once.
    let revoked = with_store(&url, &there)
        .args(["keys", "revoke", "free"])
        .output()
        .unwrap();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    for served in &servers {
        let body = json!({"model": "test", "messages": [{"role": "user", "content": "x"}]});
        let (status, answer) = Api::new(&served.address).send(
            "POST",
            "/v1/chat/completions",
            Some(&free),
            &body.to_string(),
        );
        assert_eq!(status, 401, "{answer}");
    }
}

/// A name taken by a live key is refused in PostgreSQL too, in one line.
#[test]
fn a_key_name_in_use_is_refused_in_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let create = || {
        with_store(&pg.url(), dir.path())
            .args(["keys", "create", "--name", "ci"])
            .output()
            .unwrap()
    };
    assert!(create().status.success());
    let again = create();
    assert_eq!(again.status.code(), Some(2));
    let line = String::from_utf8_lossy(&again.stderr);
    assert_contains(&line, &["'ci' exists", "baton keys revoke ci"]);
}
