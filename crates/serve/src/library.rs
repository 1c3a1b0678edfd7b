//! What runs submitted over the API may use: workflow files from the server's allowlist of
//! directories (`--workflows DIR`), and components named by path only inside its allowlist
//! (`--components DIR`). Components are loaded (signature checked, compiled) once and kept
//! while their file is unchanged.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::http::StatusCode;
use baton_core::Digest;
use baton_orchestrator::ByName;
use baton_orchestrator::workflow::Workflow;
use baton_runtime::plugin::{Entry, wasm_files};
use baton_runtime::{Host, Plugin};

use crate::error::ApiError;

pub struct Library {
    host: Arc<Host>,
    /// Directories of workflow files, canonical.
    workflows: Vec<PathBuf>,
    /// Directories components may be named in, canonical.
    components: Vec<PathBuf>,
    loaded: Mutex<HashMap<PathBuf, (Stamp, Arc<Plugin>)>>,
}

/// What identifies a version of a file: its length and modification time.
type Stamp = (u64, Option<SystemTime>);

impl Library {
    /// A library of the workflows in `workflows` and the components in `components`
    /// (directories; each must exist).
    pub fn new(
        host: Arc<Host>,
        workflows: &[PathBuf],
        components: &[PathBuf],
    ) -> Result<Self, String> {
        let canonical = |dirs: &[PathBuf], flag: &str| {
            dirs.iter()
                .map(|d| match std::fs::canonicalize(d) {
                    Ok(path) if path.is_dir() => Ok(path),
                    Ok(_) => Err(format!("{flag} {}: not a directory", d.display())),
                    Err(e) => Err(format!("{flag} {}: {e}", d.display())),
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            host,
            workflows: canonical(workflows, "--workflows")?,
            components: canonical(components, "--components")?,
            loaded: Mutex::default(),
        })
    }

    /// The workflow `name` (a file name in one of the workflow directories, `.toml`
    /// optional).
    pub fn workflow(&self, name: &str) -> Result<Workflow, ApiError> {
        let relative = Path::new(name);
        let plain = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !plain || name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "workflow '{name}' must be a file name inside the server's workflow \
                 directories, without '..' or a leading '/'"
            )));
        }
        let file = match relative.extension() {
            Some(_) => relative.to_owned(),
            None => relative.with_extension("toml"),
        };
        let path = self
            .workflows
            .iter()
            .map(|dir| dir.join(&file))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no workflow '{name}' in the server's workflow directories (baton serve \
                     --workflows DIR)"
                ))
            })?;
        let workflow = Workflow::load(&path).map_err(|reason| {
            ApiError::bad_request(format!("workflow '{name}' cannot be used: {reason}"))
        })?;
        // A server runs every run under its own policies: a workflow's must be among them.
        let enforced: Vec<Digest> = self
            .host
            .policy()
            .texts()
            .map(|(_, text)| Digest::of(text.as_bytes()))
            .collect();
        for policy in &workflow.policies {
            let text = std::fs::read(policy).map_err(|e| {
                ApiError::bad_request(format!(
                    "workflow '{name}': cannot read its policy {}: {e}",
                    policy.display()
                ))
            })?;
            if !enforced.contains(&Digest::of(&text)) {
                return Err(ApiError::bad_request(format!(
                    "workflow '{name}' layers {}, which the server does not enforce: start \
                     it with --policy {}",
                    policy.display(),
                    policy.display()
                )));
            }
        }
        Ok(workflow)
    }

    /// `path`, named in a request, if it lies inside the server's component directories.
    pub fn allowed(&self, path: &Path) -> Result<PathBuf, ApiError> {
        let refused = || {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "not_allowed",
                format!(
                    "{} is not inside the server's component directories (baton serve \
                     --components DIR)",
                    path.display()
                ),
            )
        };
        let canonical = std::fs::canonicalize(path).map_err(|_| refused())?;
        match self.components.iter().any(|dir| canonical.starts_with(dir)) {
            true => Ok(canonical),
            false => Err(refused()),
        }
    }

    /// The component at `path`, loaded once per version of its file.
    pub async fn load(&self, path: &Path) -> Result<Arc<Plugin>, ApiError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| ApiError::bad_request(format!("cannot read {}: {e}", path.display())))?;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some((seen, plugin)) = self.cache().get(path)
            && *seen == stamp
        {
            return Ok(plugin.clone());
        }
        let plugin = Arc::new(self.host.load(path).await.map_err(refusal)?);
        self.cache()
            .insert(path.to_owned(), (stamp, plugin.clone()));
        Ok(plugin)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (Stamp, Arc<Plugin>)>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tools (or prompts, with `prompts`) in `paths`: components, or directories whose
    /// components of that world are taken (others are skipped).
    pub async fn components(&self, paths: &[PathBuf], prompts: bool) -> Result<ByName, ApiError> {
        let mut found = BTreeMap::new();
        for path in paths {
            let files = match path.is_dir() {
                true => wasm_files(path).map_err(|e| ApiError::bad_request(e.to_string()))?,
                false => vec![path.clone()],
            };
            for file in files {
                let plugin = self.load(&file).await?;
                let wanted = match prompts {
                    true => matches!(plugin.entry(), Entry::Prompt(_)),
                    false => plugin.is_tool(),
                };
                if wanted {
                    found.insert(plugin.name().to_string(), plugin);
                } else if !path.is_dir() {
                    let what = if prompts { "a prompt" } else { "a tool" };
                    return Err(ApiError::bad_request(format!(
                        "{} is not {what}",
                        file.display()
                    )));
                }
            }
        }
        Ok(found)
    }
}

/// A component that cannot be loaded: refused by the server's trust policy (403), or not
/// a usable component (400).
fn refusal(error: baton_runtime::Error) -> ApiError {
    let message = error.to_string();
    match error {
        baton_runtime::Error::Unverified { .. } | baton_runtime::Error::Policy(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "not_trusted", message)
        }
        _ => ApiError::bad_request(message),
    }
}
