//! Information-flow control inside a run: the labels each invocation's data carries (see
//! `baton_policy::flow` for where they come from and which sinks accept which), joined as
//! the invocation reads, checked at every sink it sends through.
//!
//! An invocation starts with its input's labels (those of the steps and planner decisions
//! its input came from, or its caller's) and its secrets'; a file read beneath a granted
//! directory, a request to a labelled destination or a tool's output it receives joins more.
//! An HTTP request, a file write, a tool call and a model request are sinks: one whose
//! invocation carries a label the sink does not accept is refused and journaled as `denied`
//! (capability `flow`). Labels change only at points the guest's own order fixes (a
//! request's labels join when it is sent, not when its answer arrives), and each change is a
//! `labels` event in the invocation's chain, so a replay recomputes and checks them.
//!
//! Labels live in the host: a component sees none and can change none.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use baton_effects::Gate;
use baton_effects::fs::{FsOp, Node};
use baton_journal::event::EventKind;
use baton_policy::flow::{PluginFlow, Rule};
use baton_policy::{FsMount, Policy, Subject};

/// The `denied` capability of a flow the policy refuses.
pub const FLOW_CAPABILITY: &str = "flow";

/// Why an invocation's first `labels` event was recorded: its input carries them.
const INPUT: &str = "its input";

/// What data carries: label names, each with where it first came from. Public data carries
/// none.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// Public data's labels: none.
    pub fn public() -> Self {
        Self::default()
    }

    pub fn is_public(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other`'s labels (a label already carried keeps its first origin); whether any
    /// was new.
    pub fn join(&mut self, other: &Labels) -> bool {
        let mut grew = false;
        for (label, origin) in &other.0 {
            if !self.0.contains_key(label) {
                self.0.insert(label.clone(), origin.clone());
                grew = true;
            }
        }
        grew
    }

    /// `names`, each from `origin`.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a String>, origin: &str) -> Self {
        Labels(
            names
                .into_iter()
                .map(|n| (n.clone(), origin.to_string()))
                .collect(),
        )
    }

    /// The labels a chain carried at its end: those of its last `labels` event.
    pub fn at_end<'e>(events: impl DoubleEndedIterator<Item = &'e EventKind>) -> Self {
        events.rev().find_map(Self::of).unwrap_or_default()
    }

    /// What a recorded invocation's input carried: its `labels` event for its input, which
    /// comes before any effect (`events`: its chain after `invocation_started`).
    pub fn at_input<'e>(events: impl Iterator<Item = &'e EventKind>) -> Self {
        events
            .take_while(|kind| {
                matches!(kind, EventKind::Verified { .. } | EventKind::Labels { .. })
            })
            .find_map(|kind| match kind {
                EventKind::Labels { reason, .. } if reason == INPUT => Self::of(kind),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The labels a `labels` event records.
    pub fn of(kind: &EventKind) -> Option<Self> {
        match kind {
            EventKind::Labels { labels, .. } => Some(Labels(labels.iter().cloned().collect())),
            _ => None,
        }
    }

    /// The `labels` event recording these, changed by `reason`.
    pub fn event(&self, reason: &str) -> EventKind {
        EventKind::Labels {
            labels: self.0.iter().map(|(l, o)| (l.clone(), o.clone())).collect(),
            reason: reason.into(),
        }
    }

    /// The first label `accepted` does not accept.
    fn refused_by(&self, accepted: &BTreeSet<String>) -> Option<(&str, &str)> {
        self.0
            .iter()
            .find(|(label, _)| !accepted.contains(*label))
            .map(|(l, o)| (l.as_str(), o.as_str()))
    }
}

/// The flow of one invocation: its labels so far, and the rules its sinks follow.
pub struct Flow {
    state: Mutex<State>,
}

struct State {
    labels: Labels,
    /// Set when the invocation starts.
    started: Option<Started>,
}

struct Started {
    gate: Arc<dyn Gate>,
    policy: Arc<Policy>,
    plugin: String,
    rules: PluginFlow,
    /// Its granted directories' guest paths, each with what is read beneath it carries.
    directories: Vec<(String, BTreeSet<String>)>,
}

impl Flow {
    /// The flow of an invocation whose input carries `input`.
    pub fn new(input: Labels) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                labels: input,
                started: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the invocation's data carries now (its output's labels once it has ended).
    pub fn labels(&self) -> Labels {
        self.lock().labels.clone()
    }

    /// The invocation of `plugin` (the component `subject`) starts, journaled in `gate`,
    /// granted `mounts` and `secrets`: its input's labels and its secrets' are recorded.
    pub fn start(
        &self,
        gate: Arc<dyn Gate>,
        policy: Arc<Policy>,
        (plugin, subject): (&str, Subject),
        mounts: &[FsMount],
        secrets: &[String],
    ) {
        let mut state = self.lock();
        if !state.labels.is_public() {
            gate.emit(state.labels.event(INPUT));
        }
        let mut given = Labels::public();
        for name in secrets {
            let origin = format!(
                "the secret {name} given to '{plugin}' (chain {})",
                gate.chain()
            );
            given.join(&Labels::from_names(&policy.flow().secret(name), &origin));
        }
        if state.labels.join(&given) {
            gate.emit(state.labels.event("its secrets"));
        }
        let directories = mounts
            .iter()
            .map(|m| (m.guest.clone(), policy.flow().directory(m)))
            .collect();
        state.started = Some(Started {
            rules: policy.flow_for(plugin, subject),
            gate,
            policy,
            plugin: plugin.to_string(),
            directories,
        });
    }

    /// Joins `more`, recording the change as `reason`.
    pub fn join(&self, more: &Labels, reason: &str) {
        let mut state = self.lock();
        if state.labels.join(more)
            && let Some(started) = &state.started
        {
            started.gate.emit(state.labels.event(reason));
        }
    }

    /// The guest reads through `node` (any operation but a change): what lies beneath its
    /// directory joins the invocation's labels.
    pub fn read(&self, node: &Node, op: &FsOp) {
        self.source(
            "it read a file",
            |started| directory_of(&started.directories, node.path()).cloned(),
            |started| {
                format!(
                    "the fs {} of {} by '{}'",
                    op.name(),
                    op.target(node),
                    started.plugin
                )
            },
        );
    }

    /// The guest sends a request to `scheme://host:port` (`url`): what responses from there
    /// carry joins the invocation's labels.
    pub fn request(&self, (scheme, host, port): (&str, &str, u16), url: &str) {
        self.source(
            "it sent a request",
            |started| Some(started.policy.flow().response(scheme, host, port)),
            |started| format!("the response to {url} fetched by '{}'", started.plugin),
        );
    }

    /// Joins the labels `found` says a source carries, each from where `origin` says (made
    /// only when one is new), recording the change as `reason`.
    fn source(
        &self,
        reason: &str,
        found: impl FnOnce(&Started) -> Option<BTreeSet<String>>,
        origin: impl FnOnce(&Started) -> String,
    ) {
        let labels = {
            let state = self.lock();
            let Some(started) = &state.started else {
                return;
            };
            let Some(names) = found(started) else {
                return;
            };
            if names.iter().all(|n| state.labels.0.contains_key(n)) {
                return;
            }
            let origin = format!("{} (chain {})", origin(started), started.gate.chain());
            Labels::from_names(&names, &origin)
        };
        self.join(&labels, reason);
    }

    /// Whether the invocation may send through `sink` (an HTTP request to `destination`, a
    /// file write, a tool call, a model request): every label it carries must be accepted by
    /// its plugin's `may_send` and, for a request, its destination's `[flow] egress` rule. A
    /// refusal is journaled as `denied` and returned as the message the guest gets.
    pub fn check(&self, sink: &str, destination: Option<(&str, &str, u16)>) -> Result<(), String> {
        let state = self.lock();
        let Some(started) = &state.started else {
            return Ok(());
        };
        if state.labels.is_public() {
            return Ok(());
        }
        let destination =
            destination.and_then(|(s, h, p)| started.policy.flow().destination(s, h, p));
        let refusal = [started.rules.may_send.as_ref(), destination]
            .into_iter()
            .flatten()
            .find_map(|rule| Some((state.labels.refused_by(&rule.labels)?, rule)));
        let Some(((label, origin), rule)) = refusal else {
            return Ok(());
        };
        let message = format!(
            "flow-denied: '{}' may not send data labelled '{label}' in {sink}: the label came \
             from {origin}, and {} accepts only {}",
            started.plugin,
            rule.source,
            accepted(rule)
        );
        started.gate.emit(EventKind::Denied {
            capability: FLOW_CAPABILITY.into(),
            message: message.clone(),
        });
        Err(message)
    }

    /// The invocation ended: its output takes the labels its plugin's `output` adds and sheds
    /// those its `declassify` names; a change is recorded. Returns the output's labels.
    pub fn finish(&self) -> Labels {
        let mut state = self.lock();
        let State { labels, started } = &mut *state;
        let Some(started) = started else {
            return labels.clone();
        };
        let rules = &started.rules;
        let added = format!("the output of '{}'", started.plugin);
        let mut reason = Vec::new();
        if labels.join(&Labels::from_names(&rules.output, &added)) {
            reason.push(format!(
                "[plugins.{}.flow] output labels its output",
                started.plugin
            ));
        }
        if let Some(declassify) = &rules.declassify {
            let before = labels.0.len();
            labels
                .0
                .retain(|label, _| !declassify.labels.contains(label));
            if labels.0.len() < before {
                reason.push(format!("declassified by {}", declassify.source));
            }
        }
        if !reason.is_empty() {
            started.gate.emit(labels.event(&reason.join("; ")));
        }
        labels.clone()
    }
}

/// What a rule accepts, in words.
fn accepted(rule: &Rule) -> String {
    match rule.labels.is_empty() {
        true => "public data".into(),
        false => format!(
            "data labelled {}",
            rule.labels.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The labels of the granted directory (by guest path) that `path` lies beneath.
fn directory_of<'d>(
    directories: &'d [(String, BTreeSet<String>)],
    path: &str,
) -> Option<&'d BTreeSet<String>> {
    directories
        .iter()
        .filter(|(guest, _)| {
            path == guest
                || path
                    .strip_prefix(guest.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(guest, _)| guest.len())
        .map(|(_, labels)| labels)
}

/// The filesystem operations (by journaled name) that change the tree or a file: sinks. An
/// `open_at` is one too when it creates or truncates.
pub const CHANGING_OPS: [&str; 6] = [
    "write",
    "create_directory_at",
    "remove_directory_at",
    "unlink_file_at",
    "rename_at",
    "set_size",
];

/// Whether `op` changes the tree or a file (a sink) rather than reading it.
pub(crate) fn changes(op: &FsOp) -> bool {
    match op {
        FsOp::OpenAt { open, .. } => open.create || open.truncate,
        op => CHANGING_OPS.contains(&op.name()),
    }
}
