//! Per-step budgets: `[steps.ID] budget` in a workflow, enforced by the same
//! reserve-before-call ledger as the run's.

use super::*;
use crate::model_server::{ModelServer, Reply};

/// A workflow of one step, `ask`: llm-probe run as `replicates` replicates at once, each
/// making `requests` completion requests, under `[steps.ask] budget = BUDGET`.
fn probing_flow(dir: &Path, replicates: u32, requests: usize, budget: &str) -> PathBuf {
    let requests: Vec<Value> = (0..requests)
        .map(|i| json!({"model": "test", "prompt": format!("question {i}"), "max_tokens": 4}))
        .collect();
    let input = json!({ "requests": requests });
    let path = dir.join("flow.toml");
    let text = format!(
        "planner = {:?}\ntools = [{:?}]\nmax_parallel = 16\n\n\
         [[config.steps]]\nid = \"ask\"\ntool = \"llm-probe\"\nreplicates = {replicates}\n\
         input = {}\n\n[steps.ask]\nbudget = {budget:?}\n",
        plugin("planners/static.wasm"),
        plugin("testing/llm-probe.wasm"),
        toml::Value::try_from(input).unwrap(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A policy routing model `test` to `server` and granting it to llm-probe.
fn probe_policy(dir: &Path, server: &ModelServer) -> PathBuf {
    write_policy(
        dir,
        &(server.policy("test", "retries = 0")
            + "\n[plugins.llm-probe.llm]\nmodels = [\"test\"]\n"),
    )
}

/// 16 replicates race 64 completion requests for a step allowed 5 calls: exactly 5 reach the
/// model, every other request is refused by the step's budget (naming where to raise it),
/// and the run counts exactly 5 calls.
#[test]
fn replicates_racing_for_a_step_budget_never_overspend_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("yes", (3, 1)));
    let policy = probe_policy(dir.path(), &server);
    let flow = probing_flow(dir.path(), 16, 4, "calls=5");
    let (output, result) = run_flow(
        dir.path(),
        &flow,
        &["--policy", policy.to_str().unwrap(), "--timeout", "60s"],
    );
    assert!(output.status.success(), "{result}");
    assert_eq!(server.requests().len(), 5);
    assert_eq!(result["totals"]["llm_calls"], 5, "{result}");
    let evidence = &result["steps"][0]["output"]["outputs"];
    let answers: Vec<&Value> = evidence
        .as_array()
        .unwrap_or_else(|| panic!("no evidence: {result}"))
        .iter()
        .flat_map(|replicate| replicate["answers"].as_array().unwrap())
        .collect();
    assert_eq!(answers.len(), 64);
    let answered = answers.iter().filter(|a| a["ok"]["text"] == "yes").count();
    assert_eq!(answered, 5);
    for refused in answers.iter().filter(|a| a.get("ok").is_none()) {
        assert_eq!(refused["error"]["kind"], "budget-exceeded", "{refused}");
        assert_contains(
            refused["error"]["message"].as_str().unwrap(),
            &[
                "the step 'ask''s budget cannot cover this",
                "budget.calls",
                "the workflow's [steps.ask] budget",
            ],
        );
    }
}

#[test]
fn a_bad_step_budget_is_refused_with_the_step_named() {
    let dir = tempfile::tempdir().unwrap();
    let flow = probing_flow(dir.path(), 2, 1, "calls=many");
    let line = error_line(&run(&["run", flow.to_str().unwrap()]), 2);
    assert_contains(&line, &["[steps.ask] budget", "many"]);
}

/// A cheaper model the budget chose in place of the one asked for is said: in the step's
/// report (`--output`), its `--json` progress event, the summary on standard error, and the
/// journal's record of the completion (the model that answered).
#[test]
fn a_model_fallback_chosen_by_the_budget_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("cheap answer", (3, 3)));
    let policy = write_policy(
        dir.path(),
        &(server.policy("test", "retries = 0")
            + "input_per_1k = 10.0\noutput_per_1k = 10.0\nfallbacks = [\"small\"]\n\n\
               [llm.models.small]\nprovider = \"openai\"\nname = \"small-remote\"\n\n\
               [plugins.llm-probe.llm]\nmodels = [\"test\", \"small\"]\n"),
    );
    let flow = probing_flow(dir.path(), 1, 1, "usd=0.01");
    let bundle = dir.path().join("run.bundle");
    let policy = policy.to_str().unwrap();
    let bundle_arg = bundle.to_str().unwrap();
    let (output, result) = run_flow(
        dir.path(),
        &flow,
        &["--policy", policy, "--json", "--bundle", bundle_arg],
    );
    assert!(output.status.success(), "{result}");
    let note = "model 'small' answered in place of 'test' (model 'test': the step 'ask''s \
                budget cannot cover this";
    let notes = result["steps"][0]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{result}");
    assert_contains(notes[0].as_str().unwrap(), &[note]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let finished = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|event| event["event"] == "step_finished")
        .unwrap_or_else(|| panic!("no step_finished event in {stdout}"));
    assert_contains(finished["notes"][0].as_str().unwrap(), &[note]);
    // Without --json, the summary says it under the step's line.
    let (output, _) = run_flow(dir.path(), &flow, &["--policy", policy]);
    assert_contains(
        &String::from_utf8_lossy(&output.stderr),
        &["    note: model 'small' answered in place of 'test'"],
    );
    let shown = text_output(&run(&["trace", "show", bundle_arg, "--json"]));
    // The completion event records the model that answered.
    let compact: String = shown.split_whitespace().collect();
    assert_contains(&compact, &["\"model\":\"small\""]);
}

/// A refusal counts in words: "1 call needed", not "1 calls needed".
#[test]
fn a_refusal_counts_one_call_as_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("yes", (3, 1)));
    let policy = probe_policy(dir.path(), &server);
    let flow = probing_flow(dir.path(), 1, 2, "calls=1");
    let (output, result) = run_flow(dir.path(), &flow, &["--policy", policy.to_str().unwrap()]);
    assert!(output.status.success(), "{result}");
    let refused = &result["steps"][0]["output"]["answers"][1]["error"]["message"];
    assert_contains(
        refused.as_str().unwrap(),
        &["1 call needed, 1 of 1 spent or reserved"],
    );
}

/// Replicates of a sampled `ask` each draw a seed of their own, journaled with their input,
/// so an evidence bundle can differ; the step line counts replicates, not attempts.
#[test]
fn replicates_draw_their_own_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("an answer", (3, 2)));
    let policy = write_policy(
        dir.path(),
        &(server.policy("test", "retries = 0") + "\n[plugins.ask.llm]\nmodels = [\"test\"]\n"),
    );
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            "planner = {:?}\ntools = [{:?}]\nembedding_model = \"none\"\n\n[[config.steps]]\n\
             id = \"q\"\ntool = \"ask\"\nreplicates = 3\n\
             input = {{ question = \"Name a colour.\", model = \"test\", temperature = 0.8 }}\n",
            plugin("planners/static.wasm"),
            plugin("ask.wasm"),
        ),
    )
    .unwrap();
    let bundle = dir.path().join("run.bundle");
    let bundle = bundle.to_str().unwrap();
    let (output, result) = run_flow(
        dir.path(),
        &flow,
        &["--policy", policy.to_str().unwrap(), "--bundle", bundle],
    );
    assert!(output.status.success(), "{result}");
    let seeds: std::collections::BTreeSet<u64> = server
        .requests()
        .iter()
        .map(|r| r.body["seed"].as_u64().expect("a seed in each request"))
        .collect();
    assert_eq!(seeds.len(), 3, "{:?}", server.requests());
    for r in server.requests() {
        assert_eq!(r.body["temperature"].as_f64(), Some(0.8));
    }
    assert_eq!(result["steps"][0]["replicates"], 3);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_contains(&stderr, &[", 3 replicates"]);
    assert!(!stderr.contains("attempts"), "{stderr}");
    // The seeds are in the journal (each replicate's input), and the run replays.
    let shown = text_output(&run(&["trace", "show", bundle, "--json"]));
    for seed in &seeds {
        assert_contains(&shown, &[&format!("\\\"seed\\\":{seed}")]);
    }
    let replayed = text_output(&run(&["replay", bundle]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
}

/// A replicate flood: a step may have at most 64 replicates, and replicates count against
/// max_steps like the steps they are runs of.
#[test]
fn replicates_are_capped_and_counted_as_steps() {
    let dir = tempfile::tempdir().unwrap();
    let flow = |replicates: u32, max_steps: u32| {
        let path = dir.path().join(format!("flow-{replicates}.toml"));
        std::fs::write(
            &path,
            format!(
                "planner = {:?}\ntools = [{:?}]\nmax_steps = {max_steps}\n\
                 embedding_model = \"none\"\n\n[[config.steps]]\nid = \"sum\"\ntool = \"calc\"\n\
                 replicates = {replicates}\ninput = {{ expression = \"1 + 1\" }}\n",
                plugin("planners/static.wasm"),
                plugin("calc.wasm"),
            ),
        )
        .unwrap();
        path
    };
    let (output, result) = run_flow(dir.path(), &flow(5000, 10_000), &[]);
    assert_eq!(output.status.code(), Some(1), "{result}");
    assert_contains(
        result["reason"].as_str().unwrap(),
        &["step 'sum': 5000 replicates are more than the 64 a step may have"],
    );
    let (output, result) = run_flow(dir.path(), &flow(8, 5), &[]);
    assert_eq!(output.status.code(), Some(3), "{result}");
    assert_eq!(result["status"], "max_steps");
    assert_contains(
        result["reason"].as_str().unwrap(),
        &["asked for 8 steps, more than max_steps = 5"],
    );
    let (output, result) = run_flow(dir.path(), &flow(8, 8), &[]);
    assert!(output.status.success(), "{result}");
    assert_eq!(result["steps"][0]["output"]["replicates"], 8);
}

/// Template amplification: a `finish` template repeating a step's output is refused once
/// what it renders to passes the planner's output limit, and so is a step input past the
/// input limit; the run fails rather than building it.
#[test]
fn a_template_that_amplifies_an_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = "x".repeat(4096);
    let refs: Vec<String> = (0..400).map(|_| "{{big.output}}".to_string()).collect();
    let path = dir.path().join("flow.toml");
    std::fs::write(
        &path,
        format!(
            "planner = {:?}\ntools = [{:?}]\n\n[[config.steps]]\nid = \"big\"\n\
             tool = \"json-query\"\ninput = {{ document = {{ text = {text:?} }}, query = \"$.text\" }}\n\n\
             [config]\noutput = {{ copies = {refs:?} }}\n",
            plugin("planners/static.wasm"),
            plugin("json-query.wasm"),
        ),
    )
    .unwrap();
    let (output, result) = run_flow(dir.path(), &path, &[]);
    assert_eq!(output.status.code(), Some(1), "{result}");
    assert_contains(
        result["reason"].as_str().unwrap(),
        &["finished, but it renders to more than 1 MiB"],
    );
    // Under a limit it fits, it renders.
    let policy = write_policy(dir.path(), "[plugins.static.limits]\noutput = \"4 MiB\"\n");
    let (output, result) = run_flow(dir.path(), &path, &["--policy", policy.to_str().unwrap()]);
    assert!(output.status.success(), "{result}");
    assert_eq!(result["output"]["copies"].as_array().unwrap().len(), 400);
}
