//! `baton push` and `baton pull`: components in OCI registries.

use std::path::PathBuf;

use baton::Host;
use baton::registry::{OciReference, Registry};
use baton::runtime::loader::cache::CompileCache;
use clap::Args;

use super::Failure;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The component (.wasm); its signature files beside it (FILE.sig, FILE.intoto.json,
    /// FILE.sigstore.json) go with it
    file: PathBuf,
    /// Where to: oci://HOST[:PORT]/REPO:TAG
    reference: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: oci://HOST[:PORT]/REPO:TAG, oci://HOST[:PORT]/REPO@sha256:…, or
    /// oci://HOST[:PORT]/REPO:^1.2 (the newest matching version that verifies and may run)
    reference: String,
}

/// Pushes the component and its signature files; prints the reference pinned to its digest.
pub async fn push(cache_dir: Option<PathBuf>, args: PushArgs) -> Result<(), Failure> {
    let cache = cache_dir
        .or_else(CompileCache::default_dir)
        .unwrap_or_else(std::env::temp_dir);
    let pushed = Registry::new(&cache)
        .push(&args.file, &args.reference)
        .await
        .map_err(baton::Error::from)?;
    println!("{}", pushed.pinned);
    if !pushed.signed {
        eprintln!(
            "warning: {} has no signature beside it, so Baton will refuse to load what was \
             pushed; sign it (`baton sign`) and push again",
            args.file.display()
        );
    }
    Ok(())
}

/// Pulls the component into the cache and verifies it under the policy, as loading it would.
pub async fn pull(host: &Host, args: PullArgs) -> Result<(), baton::Error> {
    let mut reference = OciReference::parse(&args.reference)?;
    let mut tag = args.reference.clone();
    if reference.versions.is_some() {
        tag = host.newest(&reference, true).await?.1;
        reference = OciReference::parse(&tag)?;
    }
    let pulled = host.pull(&tag).await?;
    let plugin = host.load(&pulled.path).await?;
    println!("{}", reference.pinned(&pulled.manifest));
    eprintln!(
        "{} {} {} ({}), {}: {}",
        plugin.loaded.shape.world,
        plugin.name(),
        plugin.info.version(),
        plugin.loaded.digest,
        plugin.loaded.provenance,
        pulled.path.display()
    );
    Ok(())
}
