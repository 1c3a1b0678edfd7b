//! Planners and what they see: runs without a workflow file, bad plans, replicates,
//! tool search, cached model steps, and the react agent loop with its prompts.

use super::*;

#[test]
fn a_run_without_a_workflow_file_takes_planner_tools_and_task() {
    let dir = tempfile::tempdir().unwrap();
    let planner = plugin("testing/finish-planner.wasm");
    let tools = plugin("calc.wasm");
    let output = run_with_store(
        &dir.path().join("journal.db"),
        &[
            "run",
            "--planner",
            planner.to_str().unwrap(),
            "--tools",
            tools.to_str().unwrap(),
            "--input",
            r#"{"answer": 42}"#,
            "say the answer",
        ],
    );
    assert_eq!(json_output(&output), json!({"answer": 42}));
}

/// The static planner given no plan (`--planner` without a workflow) says what it needs,
/// rather than how its configuration failed to parse.
#[test]
fn the_static_planner_without_a_plan_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let planner = plugin("planners/static.wasm");
    let tools = plugin("calc.wasm");
    let output = run_with_store(
        &dir.path().join("journal.db"),
        &[
            "run",
            "--planner",
            planner.to_str().unwrap(),
            "--tools",
            tools.to_str().unwrap(),
            "a task",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let line = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_contains(
        &line,
        &[
            "error: the run failed: planner 'static' gave up: there is no plan to run",
            "[[config.steps]]",
            "docs/workflows.md",
        ],
    );
    assert!(!line.contains("invalid type: null"), "{line}");
}

#[test]
fn bad_workflows_and_plans_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let missing = run_with_store(&store, &["run", "/nonexistent/flow.toml"]);
    assert_contains(
        &error_line(&missing, 2),
        &["workflow /nonexistent/flow.toml", "cannot read it"],
    );
    let flow = workflow(dir.path(), "planners/static.wasm", "max_paralel = 2\n");
    let typo = run_with_store(&store, &["run", flow.to_str().unwrap()]);
    assert_contains(&error_line(&typo, 2), &["max_paralel"]);
    let not_a_planner = workflow(dir.path(), "calc.wasm", "");
    let wrong = run_with_store(&store, &["run", not_a_planner.to_str().unwrap()]);
    assert_contains(
        &error_line(&wrong, 2),
        &["is a tool component", "needs a planner"],
    );
    let nothing = run_with_store(&store, &["run"]);
    assert_contains(&error_line(&nothing, 2), &["needs a workflow file"]);
    let flow = workflow(dir.path(), "planners/static.wasm", "");
    let bad_input = run_with_store(&store, &["run", flow.to_str().unwrap(), "--input", "{"]);
    assert_contains(&error_line(&bad_input, 2), &["not JSON"]);
    // A plan naming a tool that is not there fails the run, naming the tool.
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        "[[config.steps]]\nid = \"x\"\ntool = \"nope\"\n",
    );
    let (output, result) = run_flow(dir.path(), &flow, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_contains(
        result["reason"].as_str().unwrap(),
        &["impossible plan", "no tool named 'nope'"],
    );
}

#[test]
fn replicates_return_an_evidence_bundle_with_a_consensus() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = fetch_policy(dir.path(), &server);
    let body = format!(
        "[[config.steps]]\nid = \"ask\"\ntool = \"fetch\"\nreplicates = 3\ninput = {{ url = \"{}\" }}\n\n[config.output]\nanswer = \"{{{{ask.output.consensus.body}}}}\"\n",
        server.url("/vote")
    );
    let flow = workflow(dir.path(), "planners/static.wasm", &body);
    let bundle = dir.path().join("run.bundle");
    let (output, result) = run_flow(
        dir.path(),
        &flow,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{result}");
    let ask = step(&result, "ask");
    assert_eq!(ask["attempts"], 3);
    let evidence = &ask["output"];
    assert_eq!(evidence["replicates"], 3);
    assert_eq!(evidence["measure"], "embedding:all-minilm-l6-v2");
    let bodies: Vec<&str> = evidence["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["body"].as_str().unwrap())
        .collect();
    let mut sorted = bodies.clone();
    sorted.sort();
    let mut votes = VOTES.to_vec();
    votes.sort();
    assert_eq!(sorted, votes, "each replicate made its own request");
    // The consensus is one of the two answers that agree, and says so with its confidence.
    let answer = result["output"]["answer"].as_str().unwrap();
    assert!(answer.contains("Paris"), "{result}");
    let sims = &evidence["similarities"];
    let at = |text: &str| bodies.iter().position(|b| *b == text).unwrap();
    let (paris, paris2, banana) = (at(VOTES[0]), at(VOTES[1]), at(VOTES[2]));
    assert_eq!(sims[paris][paris], 1.0);
    assert_eq!(sims[paris][paris2], sims[paris2][paris]);
    assert!(
        sims[paris][paris2].as_f64() > sims[paris][banana].as_f64(),
        "{sims}"
    );
    let confidence = evidence["confidence"].as_f64().unwrap();
    let medoid = evidence["consensus_index"].as_u64().unwrap() as usize;
    let expected = (1..3)
        .map(|k| sims[medoid][(medoid + k) % 3].as_f64().unwrap())
        .sum::<f64>()
        / 2.0;
    assert!(
        (confidence - expected).abs() < 1e-3,
        "{confidence} vs {expected}"
    );
    // The embeddings are journaled: a replay needs neither the server nor the model.
    drop(server);
    let replayed = baton()
        .env("BATON_MODELS", dir.path().join("no-models"))
        .args(["replay", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text_output(&replayed).starts_with("identical: "));
}

#[test]
fn with_more_tools_than_top_k_the_planner_sees_those_closest_to_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let plan = |tool: &str, input: &str| {
        format!(
            "task = \"count the words and lines in a piece of text\"\ntool_search_top_k = 1\n\
             [[config.steps]]\nid = \"one\"\ntool = \"{tool}\"\ninput = {input}\n"
        )
    };
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        &plan("text-stats", "{ text = \"a b\\nc\" }"),
    );
    let bundle = dir.path().join("run.bundle");
    let (output, result) = run_flow(dir.path(), &flow, &["--bundle", bundle.to_str().unwrap()]);
    assert!(output.status.success(), "{result}");
    assert_eq!(step(&result, "one")["output"]["words"], 3);
    let replayed = baton()
        .env("BATON_MODELS", dir.path().join("no-models"))
        .args(["replay", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text_output(&replayed).starts_with("identical: "));
    // The arithmetic tool is not among the one shown for this task.
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        &plan("calc", "{ expression = \"1\" }"),
    );
    let (output, result) = run_flow(dir.path(), &flow, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_contains(
        result["reason"].as_str().unwrap(),
        &["no tool named 'calc' is available (available: text-stats)"],
    );
}

#[test]
fn an_llm_step_of_a_paraphrased_second_run_is_served_from_the_cache() {
    let server = crate::model_server::ModelServer::start(
        Vec::new(),
        crate::model_server::Reply::ok("Paris.", (9, 2)),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        &(server.policy("test", "retries = 0")
            + "input_per_1k = 1.0\noutput_per_1k = 2.0\n"
            + "\n[cache]\nenabled = true\n\n[plugins.ask.llm]\nmodels = [\"test\"]\n"),
    );
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        "[[config.steps]]\nid = \"answer\"\ntool = \"ask\"\n\
         input = { question = \"{{task}}\", model = \"test\" }\n",
    );
    let policy_arg = policy.to_str().unwrap();
    let (output, first) = run_flow(
        dir.path(),
        &flow,
        &[
            "--policy",
            policy_arg,
            "--task",
            "What is the capital of France?",
            "--budget",
            "calls=1",
            "--json",
        ],
    );
    assert!(output.status.success(), "{first}");
    // The one call the budget allows is spent: a warning says so.
    let events = String::from_utf8_lossy(&output.stdout);
    let warning = events
        .lines()
        .find(|l| l.contains(r#""event":"budget_warning""#))
        .unwrap_or_else(|| panic!("no budget warning in {events}"));
    assert_contains(warning, &["budget.calls"]);
    let answer = step(&first, "answer");
    assert_eq!(answer["output"]["answer"], "Paris.");
    assert!(answer.get("cache_tier").is_none(), "{answer}");
    assert_eq!(
        (answer["tokens"].as_u64(), answer["cache_hits"].as_u64()),
        (Some(11), Some(0))
    );
    // 9 input tokens at $1 per thousand, 2 output tokens at $2 per thousand.
    assert_eq!(first["totals"]["cost_usd"], 0.013);
    // A paraphrase: no request to the model, nothing spent, the hit counted and reported.
    let (output, second) = run_flow(
        dir.path(),
        &flow,
        &[
            "--policy",
            policy_arg,
            "--task",
            "what is the capital city of France?",
            "--json",
        ],
    );
    assert!(output.status.success(), "{second}");
    assert_eq!(server.requests().len(), 1);
    let answer = step(&second, "answer");
    assert_eq!(answer["output"]["answer"], "Paris.");
    assert_eq!(
        (answer["tokens"].as_u64(), answer["cache_hits"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(answer["cache_tier"], "semantic");
    // The first question again, word for word: the exact tier.
    let (_, third) = run_flow(
        dir.path(),
        &flow,
        &[
            "--policy",
            policy_arg,
            "--task",
            "What is the capital of France?",
        ],
    );
    assert_eq!(step(&third, "answer")["cache_tier"], "exact");
    assert_eq!(server.requests().len(), 1);
    assert_eq!(second["totals"]["cache_hits"], 1);
    assert_contains(&second["budget"].to_string(), &["1 cache hit"]);
    let events = String::from_utf8_lossy(&output.stdout);
    assert!(
        events.lines().any(|l| l.contains(r#""event":"cache_hit""#)),
        "{events}"
    );
}

mod react {
    use super::*;
    use crate::model_server::{ModelServer, Reply};

    /// A react workflow in `dir` with the `calc` tool, the model `test` served by `server`,
    /// and `config` as the planner's `[config]` body.
    fn flow(dir: &Path, server: &ModelServer, config: &str) -> (PathBuf, PathBuf) {
        let policy = write_policy(
            dir,
            &(server.policy("test", "retries = 0")
                + "\n[plugins.react.llm]\nmodels = [\"test\"]\n\
                   \n[plugins.react-prompt.llm]\nmodels = [\"test\"]\n"),
        );
        let path = dir.join("react.toml");
        let text = format!(
            "planner = {:?}\nprompts = [{:?}]\ntools = [{:?}]\nmax_steps = 8\n\
             task = \"What is 6 times 7?\"\n[config]\nmodel = \"test\"\n{config}",
            plugin("planners/react.wasm"),
            plugin("prompts/react.wasm"),
            plugin("calc.wasm"),
        );
        std::fs::write(&path, text).unwrap();
        (path, policy)
    }

    /// The user message of the `n`th request the model server got.
    fn user_message(server: &ModelServer, n: usize) -> String {
        let body = &server.requests()[n].body;
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "user")
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_model_chooses_a_tool_sees_its_result_and_finishes() {
        let server = ModelServer::start(
            vec![Reply::ok(r#"CALL calc {"expression": "6 * 7"}"#, (50, 9))],
            Reply::ok("FINISH 6 times 7 is 42.", (60, 7)),
        );
        let dir = tempfile::tempdir().unwrap();
        let (flow, policy) = flow(dir.path(), &server, "");
        let bundle = dir.path().join("run.bundle");
        let (output, result) = run_flow(
            dir.path(),
            &flow,
            &[
                "--policy",
                policy.to_str().unwrap(),
                "--bundle",
                bundle.to_str().unwrap(),
            ],
        );
        assert!(output.status.success(), "{result}");
        assert_eq!(result["output"], json!({"answer": "6 times 7 is 42."}));
        assert_eq!(step(&result, "step1")["output"]["value"], 42.0);
        assert_eq!(result["totals"]["decisions"], 2);
        assert_eq!(result["totals"]["tokens"], 126);
        // The prompt component rendered the protocol, the task, the tools, then the result.
        assert_eq!(server.requests().len(), 2);
        assert_contains(
            &user_message(&server, 0),
            &["Task: What is 6 times 7?", "- calc: "],
        );
        assert_contains(
            &user_message(&server, 1),
            &[r#"step1: CALL calc {"expression":"6 * 7"} returned: {"value":42.0}"#],
        );
        // The whole loop replays without the model server.
        drop(server);
        let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
        assert!(replayed.starts_with("identical: "), "{replayed}");
    }

    /// Three calls of `json-query` echoing long texts, then an answer.
    fn long_results_server() -> ModelServer {
        let calls = ["alpha", "bravo", "charlie"]
            .iter()
            .map(|word| {
                let text = format!("{word} ").repeat(40);
                let call = json!({"document": {"text": text}, "query": "$.text"});
                Reply::ok(&format!("CALL json-query {call}"), (10, 10))
            })
            .collect();
        ModelServer::start(calls, Reply::ok("FINISH done", (10, 2)))
    }

    /// The line of `step` among the results of `message`.
    fn result_line<'m>(message: &'m str, step: &str) -> &'m str {
        message
            .lines()
            .find(|l| l.starts_with(&format!("{step}: CALL ")))
            .unwrap_or_else(|| panic!("no {step} in {message}"))
    }

    #[test]
    fn the_prompt_condenses_then_drops_the_oldest_results_to_fit_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let query = plugin("json-query.wasm");
        // First with room for everything, to measure the parts of the prompt.
        let server = long_results_server();
        let (flow_path, policy) = flow(dir.path(), &server, "context_tokens = 100000\n");
        let args = [
            "--policy",
            policy.to_str().unwrap(),
            "--tools",
            query.to_str().unwrap(),
        ];
        let (output, _) = run_flow(dir.path(), &flow_path, &args);
        assert!(output.status.success());
        let full = user_message(&server, 3);
        let body = &server.requests()[3].body;
        let system = body["messages"][0]["content"].as_str().unwrap().len();
        let (l1, l2, l3) = (
            result_line(&full, "step1").len(),
            result_line(&full, "step2").len(),
            result_line(&full, "step3").len(),
        );
        // The test provider counts a token per byte. Room for the fixed parts (with the
        // reserve for a "left out" line), the newest result whole and the next condensed.
        let fixed =
            system + full.len() - (l1 + l2 + l3 + 2) + "(999999 earlier results left out)\n".len();
        let condensed = 80 + "… (condensed)".len();
        let budget = fixed + l3 + condensed + 20;
        assert!(
            l2 > condensed + 20,
            "the results must be long enough to condense"
        );

        let server = long_results_server();
        let (flow_path, policy) =
            flow(dir.path(), &server, &format!("context_tokens = {budget}\n"));
        let args = [
            "--policy",
            policy.to_str().unwrap(),
            "--tools",
            query.to_str().unwrap(),
        ];
        let (output, result) = run_flow(dir.path(), &flow_path, &args);
        assert!(output.status.success(), "{result}");
        let last = user_message(&server, 3);
        // The newest result whole, the one before condensed, the oldest left out (and said).
        assert_eq!(result_line(&last, "step3"), result_line(&full, "step3"));
        assert!(
            result_line(&last, "step2").ends_with("… (condensed)"),
            "{last}"
        );
        assert!(!last.contains("step1: "), "{last}");
        assert_contains(&last, &["(1 earlier results left out)"]);
    }

    /// What the model writes in a tool's input is meant as it stands: a `{{...}}` in it is
    /// not read as a reference to another step (which would fail the run, or worse, copy
    /// another step's output in), in the run and in its replay.
    #[test]
    fn braces_the_model_writes_reach_the_tool_as_written() {
        let text = "Dear {{name}}, see {{step1.output}} and {{";
        let call = json!({"document": {"text": text}, "query": "$.text"});
        let server = ModelServer::start(
            vec![Reply::ok(&format!("CALL json-query {call}"), (10, 10))],
            Reply::ok("FINISH done", (10, 2)),
        );
        let dir = tempfile::tempdir().unwrap();
        let (flow_path, policy) = flow(dir.path(), &server, "constrained = false\n");
        let bundle = dir.path().join("run.bundle");
        let query = plugin("json-query.wasm");
        let args = [
            "--policy",
            policy.to_str().unwrap(),
            "--tools",
            query.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ];
        let (output, result) = run_flow(dir.path(), &flow_path, &args);
        assert!(output.status.success(), "{result}");
        assert_eq!(step(&result, "step1")["output"]["matches"], json!([text]));
        assert_contains(
            &user_message(&server, 1),
            &[
                "step1: CALL json-query {",
                r#"returned: {"count":1,"matches":["Dear {{name}}"#,
            ],
        );
        drop(server);
        let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
        assert!(replayed.starts_with("identical: "), "{replayed}");
    }

    /// A reply that breaks the protocol fails the run, saying how and quoting the reply, in
    /// the result, the status and the summary line.
    #[test]
    fn a_reply_that_breaks_the_protocol_fails_the_run_with_what_the_model_said() {
        for (reply, why) in [
            ("17 * 23 is 345", "the reply was neither CALL nor FINISH"),
            (
                "CALL nosuchtool {}",
                "no tool named 'nosuchtool' is offered",
            ),
            (
                r#"CALL calc [1, 2]"#,
                "the input for 'calc' is not a JSON object",
            ),
        ] {
            let server = ModelServer::start(Vec::new(), Reply::ok(reply, (10, 5)));
            let dir = tempfile::tempdir().unwrap();
            let (flow, policy) = flow(dir.path(), &server, "");
            let (output, result) =
                run_flow(dir.path(), &flow, &["--policy", policy.to_str().unwrap()]);
            assert_eq!(output.status.code(), Some(1), "{result}");
            assert_eq!(result["status"], "failed", "{result}");
            assert!(result.get("output").is_none(), "{result}");
            let reason = result["reason"].as_str().unwrap();
            assert_contains(
                reason,
                &[
                    "the model broke the reply protocol",
                    why,
                    &format!("it said: {reply:?}"),
                ],
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_contains(&stderr, &["the run failed", why]);
        }
    }

    /// The planner's completions from the local model in the journal of `run`: each
    /// request's pattern and the reply.
    fn planner_replies(dir: &Path, run: &Value) -> Vec<(Option<String>, String)> {
        use baton::journal::event::{EventKind, LlmOutcome};
        let journal =
            baton::journal::store::Journal::open_read_only(&dir.join("journal.db")).unwrap();
        journal
            .events(run.as_str().unwrap())
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Llm {
                    request,
                    outcome: LlmOutcome::Completed { text, .. },
                    ..
                } => Some((request.pattern, text)),
                _ => None,
            })
            .collect()
    }

    /// A react run of `task` on the local model, with `config` in its `[config]`.
    fn local_run(dir: &Path, task: &str, config: &str) -> (Output, Value) {
        let policy = write_policy(
            dir,
            "[plugins.react.llm]\nmodels = [\"smollm2\"]\n\
             [plugins.react-prompt.llm]\nmodels = [\"smollm2\"]\n",
        );
        let path = dir.join("react.toml");
        let text = format!(
            "planner = {:?}\nprompts = [{:?}]\ntools = [{:?}, {:?}]\nmax_steps = 3\n\
             timeout = \"60s\"\ntask = {task:?}\n[config]\nmax_tokens = 96\n{config}",
            plugin("planners/react.wasm"),
            plugin("prompts/react.wasm"),
            plugin("calc.wasm"),
            plugin("text-stats.wasm"),
        );
        std::fs::write(&path, text).unwrap();
        let bundle = dir.join("run.bundle");
        let args = [
            "--policy",
            policy.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ];
        run_flow(dir, &path, &args)
    }

    /// Held to the protocol's pattern, even SmolLM2-135M makes only calls of offered tools
    /// with inputs of their schemas' shape (or answers); the pattern is journaled with each
    /// request, and the run replays from its bundle. Without it the same model breaks the
    /// protocol at once.
    #[test]
    fn the_local_models_replies_are_held_to_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let (output, result) = local_run(dir.path(), "What is 17 * 23?", "");
        let replies = planner_replies(dir.path(), &result["run"]);
        assert!(!replies.is_empty(), "{result}");
        for (pattern, reply) in &replies {
            let pattern = pattern
                .as_deref()
                .expect("each request carries the pattern");
            assert_contains(
                pattern,
                &["CALL calc \\{", "CALL text\\-stats \\{", "|FINISH "],
            );
            if let Some(answer) = reply.strip_prefix("FINISH ") {
                assert!(!answer.is_empty() && !answer.contains('\n'), "{reply:?}");
                continue;
            }
            let (tool, input) = reply
                .strip_prefix("CALL ")
                .and_then(|call| call.split_once(' '))
                .unwrap_or_else(|| panic!("neither CALL nor FINISH: {reply:?}"));
            let input: Value = serde_json::from_str(input).unwrap();
            match tool {
                "calc" => assert!(input["expression"].is_string(), "{reply:?}"),
                "text-stats" => assert!(input["text"].is_string(), "{reply:?}"),
                other => panic!("a tool that is not offered: {other} in {reply:?}"),
            }
        }
        let reason = result["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains("broke the reply protocol"), "{result}");
        // A `{{` the model writes (this model does, here) reaches the tool as written: the
        // planner escapes it, so the host never reads it as a reference.
        assert!(!reason.contains("reference"), "{result}");
        assert!(!reason.contains("has no output"), "{result}");
        assert!(matches!(output.status.code(), Some(0 | 1 | 3)), "{result}");
        let bundle = dir.path().join("run.bundle");
        let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
        assert!(replayed.starts_with("identical: "), "{replayed}");

        let free = tempfile::tempdir().unwrap();
        let (_, result) = local_run(free.path(), "What is 17 * 23?", "constrained = false\n");
        let replies = planner_replies(free.path(), &result["run"]);
        assert!(replies.iter().all(|(pattern, _)| pattern.is_none()));
        assert_contains(
            result["reason"].as_str().unwrap(),
            &["the model broke the reply protocol", "it said: "],
        );
    }

    /// The shipped agent example on its model (Qwen2.5-Coder-1.5B-Instruct, run locally):
    /// the model calls calc, is shown the call with its result (the planner reads the step's
    /// input with `plan.step-input`), and finishes with the tool's answer; the run replays
    /// identically from its bundle.
    #[test]
    fn the_agent_example_finishes_a_task_with_the_tools_answer() {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent");
        let plugins = plugin("calc.wasm").parent().unwrap().to_path_buf();
        let flow = dir.path().join("agent.toml");
        let text = std::fs::read_to_string(example.join("workflow.toml"))
            .unwrap()
            .replace("../../target/plugins", plugins.to_str().unwrap())
            .replace(
                "\"policy.toml\"",
                &format!("{:?}", example.join("policy.toml")),
            );
        std::fs::write(&flow, text).unwrap();
        let bundle = dir.path().join("run.bundle");
        let (output, result) = run_flow(dir.path(), &flow, &["--bundle", bundle.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{result}");
        assert_eq!(result["status"], "succeeded", "{result}");
        let first = &result["steps"][0];
        assert_eq!(first["tool"], "calc", "{result}");
        assert_eq!(first["output"]["value"], 391.0, "{result}");
        let answer = result["output"]["answer"].as_str().unwrap();
        assert!(answer.contains("391"), "{result}");
        // The decision after the call was asked with the call and its result.
        let journal =
            baton::journal::store::Journal::open_read_only(&dir.path().join("journal.db")).unwrap();
        let prompts: Vec<String> = journal
            .events(result["run"].as_str().unwrap())
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                baton::journal::event::EventKind::Llm { request, .. } => {
                    request.messages.last().map(|m| m.content.clone())
                }
                _ => None,
            })
            .collect();
        assert!(prompts.len() >= 2, "{prompts:?}");
        assert_contains(
            &prompts[1],
            &[
                "step1: CALL calc {\"expression\":",
                "returned: {\"value\":391.0}",
                "If these results answer the task, reply FINISH",
            ],
        );
        let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
        assert!(replayed.starts_with("identical: "), "{replayed}");
    }
}

#[test]
fn a_tool_may_not_render_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        "[[config.steps]]\nid = \"probe\"\ntool = \"llm-probe\"\ninput = { render = [\"react-prompt\"] }\n",
    );
    let probe = plugin("testing/llm-probe.wasm");
    let prompts = plugin("prompts/react.wasm");
    let (output, result) = run_flow(
        dir.path(),
        &flow,
        &[
            "--tools",
            probe.to_str().unwrap(),
            "--prompts",
            prompts.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{result}");
    let rendered = &step(&result, "probe")["output"]["rendered"][0]["error"];
    assert_eq!(rendered["kind"], "not-granted", "{result}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("denied: prompts: rendering prompt 'react-prompt'")),
        "{stderr}"
    );
}
