//! Test fixture: a runaway planner. Every decision asks for one more `calc` step and it
//! never finishes, so only the host's max_steps ends the run.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/planner" });

use baton::plugin::types::Step;
use exports::baton::plugin::planner_api::{Decision, Guest, PlannerInfo, RunState};

struct EndlessPlanner;

impl Guest for EndlessPlanner {
    fn describe() -> PlannerInfo {
        PlannerInfo {
            name: "endless-planner".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Asks for one more step forever.".into(),
            config_schema: r#"{"type": "null"}"#.into(),
        }
    }

    fn next(state: RunState) -> Decision {
        Decision::Call(vec![Step {
            id: format!("s{}", state.iteration),
            tool: "calc".into(),
            input: r#"{"expression": "1 + 1"}"#.into(),
            depends_on: Vec::new(),
            replicates: 0,
        }])
    }
}

export!(EndlessPlanner);
