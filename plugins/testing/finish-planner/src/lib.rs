//! Test fixture: a planner that finishes at once, with the run's input as its output.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/planner" });

use exports::baton::plugin::planner_api::{Decision, Guest, PlannerInfo, RunState};

struct FinishPlanner;

impl Guest for FinishPlanner {
    fn describe() -> PlannerInfo {
        PlannerInfo {
            name: "finish-planner".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Finishes immediately, returning the run's input.".into(),
            config_schema: r#"{"type": "null"}"#.into(),
        }
    }

    fn next(state: RunState) -> Decision {
        Decision::Finish(state.input)
    }
}

export!(FinishPlanner);
