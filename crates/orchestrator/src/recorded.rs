//! A recorded run's `workflow` event and the components it names, as a replay and a resumed
//! run read them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use baton_journal::event::{Event, EventKind};
use baton_runtime::Plugin;

use super::workflow::Settings;

pub(crate) struct RecordedWorkflow<'e> {
    /// The event itself, which a replay or a resumed run records again as it is.
    pub event: &'e EventKind,
    pub task: &'e str,
    pub input: Value,
    pub settings: Settings,
    pub planner: Arc<Plugin>,
    pub tools: BTreeMap<String, Arc<Plugin>>,
    pub prompts: BTreeMap<String, Arc<Plugin>>,
}

impl<'e> RecordedWorkflow<'e> {
    /// The `workflow` event of `events`, its components found by digest among `components`;
    /// the error says why it cannot be read.
    pub fn read(
        events: &'e [Event],
        components: &BTreeMap<String, Arc<Plugin>>,
    ) -> Result<Self, String> {
        let Some(
            event @ EventKind::Workflow {
                input,
                planner,
                prompts,
                settings,
                task,
                tools,
            },
        ) = events
            .iter()
            .map(|e| &e.kind)
            .find(|k| matches!(k, EventKind::Workflow { .. }))
        else {
            return Err("it records no `baton run` workflow".into());
        };
        let component = |digest: &String| {
            components
                .get(digest)
                .cloned()
                .ok_or_else(|| format!("it lacks the bytes of component {digest}"))
        };
        let by_name = |listed: &[(String, String)]| {
            listed
                .iter()
                .map(|(name, digest)| Ok((name.clone(), component(digest)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()
        };
        Ok(Self {
            event,
            task,
            input: serde_json::from_str(input)
                .map_err(|e| format!("its input is not JSON ({e})"))?,
            settings: serde_json::from_str(settings)
                .map_err(|e| format!("its workflow settings are unreadable ({e})"))?,
            planner: component(planner)?,
            tools: by_name(tools)?,
            prompts: by_name(prompts)?,
        })
    }
}
