//! `baton keygen`, `baton sign` and `baton verify`: keys, detached signatures and in-toto
//! attestations in the formats cosign and other Sigstore tools use (see `baton::signing`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use baton::Digest;
use baton::Info;
use baton::policy::Policy;
use baton::trust::check::{
    PolicyTrust, Provenance, Sidecars, TrustCheck, check_attestation, with_suffix,
};
use baton::trust::signing::{
    Envelope, INTOTO_PAYLOAD_TYPE, PREDICATE_TYPE, PublicKey, STATEMENT_TYPE, SigningKey,
};
use baton::{Error, Host};
use clap::Args;
use serde_json::{Value, json};

/// Where a signing key's password comes from when no terminal can be asked.
const PASSWORD_VAR: &str = "BATON_KEY_PASSWORD";

use baton::policy::journal::DEFAULT_PASSWORD_ENV;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The directory to write the keys into: baton.key (encrypted private key) and baton.pub,
    /// or host.key and host.pub with --host
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Make the key this host signs the runs it records with (name it in the policy's
    /// `[journal] signing_key`; its password is then read from BATON_HOST_KEY_PASSWORD)
    #[arg(long)]
    host: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The components (.wasm) and policy files (.toml) to sign
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The private key (from `baton keygen`, or cosign's); its password comes from
    /// BATON_KEY_PASSWORD or a prompt
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Replace a signature and attestation that are there already
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signed file; its signature is FILE.sig and its attestation FILE.intoto.json
    file: PathBuf,
    /// The public key the signature must verify with; without it, the signers the policy's
    /// [trust] lists (the built-in policy, or the one given with --policy)
    #[arg(long, value_name = "KEY")]
    key: Option<PathBuf>,
}

fn key_error(path: &Path, reason: impl ToString) -> Error {
    Error::Key {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The password for `key`: BATON_KEY_PASSWORD, else asked on the terminal (twice for a new
/// key).
fn password(key: &Path, new: bool) -> Result<String, Error> {
    password_from(PASSWORD_VAR, key, new)
}

/// A password from the environment variable `var`, or asked in a terminal.
fn password_from(var: &str, key: &Path, new: bool) -> Result<String, Error> {
    if let Ok(password) = std::env::var(var) {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(key_error(
            key,
            format!("no password: set {var}, or run baton in a terminal to be asked"),
        ));
    }
    let ask = |prompt: &str| rpassword::prompt_password(prompt).map_err(|e| key_error(key, e));
    let password = ask(&format!("Password for {}: ", key.display()))?;
    if new && ask("Again: ")? != password {
        return Err(key_error(key, "the passwords differ"));
    }
    Ok(password)
}

pub fn keygen(args: KeygenArgs) -> Result<(), Error> {
    let name = if args.host { "host" } else { "baton" };
    let private = args.out.join(format!("{name}.key"));
    let public = args.out.join(format!("{name}.pub"));
    for path in [&private, &public] {
        if path.exists() {
            return Err(key_error(
                path,
                "already exists; Baton never overwrites a key (choose another --out)",
            ));
        }
    }
    let password = match args.host {
        true => password_from(DEFAULT_PASSWORD_ENV, &private, true)?,
        false => password(&private, true)?,
    };
    let (private_pem, public_pem) =
        baton::trust::signing::generate(password.as_bytes()).map_err(|e| key_error(&private, e))?;
    std::fs::create_dir_all(&args.out).map_err(|e| key_error(&args.out, e))?;
    write_whole(&private, private_pem.as_bytes(), true, false)
        .map_err(|e| key_error(&private, e))?;
    write_whole(&public, public_pem.as_bytes(), false, false).map_err(|e| key_error(&public, e))?;
    println!("private key {} (encrypted)", private.display());
    println!("public key  {}", public.display());
    Ok(())
}

/// Writes `bytes` to `path` all at once, through a temporary file beside it: readable by its
/// owner only when `private`, and never over an existing file unless `replace`.
pub(super) fn write_whole(
    path: &Path,
    bytes: &[u8],
    private: bool,
    replace: bool,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if private { 0o600 } else { 0o644 };
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::io::Write::write_all(&mut file, bytes)?;
    match replace {
        true => file.persist(path),
        false => file.persist_noclobber(path),
    }
    .map(drop)
    .map_err(|e| e.error)
}

pub async fn sign(host: &Host, args: SignArgs) -> Result<(), Error> {
    // Nothing is signed unless every file can be: an earlier signature is replaced only when
    // asked to.
    if !args.force {
        for file in &args.files {
            for suffix in [".sig", ".intoto.json"] {
                let path = with_suffix(file, suffix);
                if path.exists() {
                    return Err(Error::Sign {
                        path,
                        reason: "it exists already; sign again with --force to replace it".into(),
                    });
                }
            }
        }
    }
    let key_text = std::fs::read_to_string(&args.key).map_err(|e| key_error(&args.key, e))?;
    let password = password(&args.key, false)?;
    let key = SigningKey::open(
        &key_text,
        &args.key.display().to_string(),
        password.as_bytes(),
    )
    .map_err(|e| key_error(&args.key, e))?;
    for file in &args.files {
        sign_one(host, file, &key, &args.key).await?;
    }
    Ok(())
}

async fn sign_one(
    host: &Host,
    file: &Path,
    key: &SigningKey,
    key_path: &Path,
) -> Result<(), Error> {
    let cannot = |reason: String| Error::Sign {
        path: file.to_owned(),
        reason,
    };
    let bytes = std::fs::read(file).map_err(|e| cannot(e.to_string()))?;
    let predicate = describe(host, file, &bytes).await?;

    let signature = key.sign(&bytes).map_err(|e| key_error(key_path, e))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": Digest::of(&bytes).hex()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    });
    let payload = serde_json::to_vec(&statement).expect("JSON serializes");
    let envelope =
        Envelope::sign(INTOTO_PAYLOAD_TYPE, &payload, key).map_err(|e| key_error(key_path, e))?;
    let sig_path = with_suffix(file, ".sig");
    let attestation_path = with_suffix(file, ".intoto.json");
    let envelope = serde_json::to_string_pretty(&envelope).expect("JSON serializes");
    for (path, bytes) in [
        (&sig_path, BASE64.encode(signature).into_bytes()),
        (&attestation_path, envelope.into_bytes()),
    ] {
        write_whole(path, &bytes, false, true).map_err(|e| Error::Sign {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    }
    println!("signature   {}", sig_path.display());
    println!("attestation {}", attestation_path.display());
    Ok(())
}

/// What the attestation says a file is: a component (its world, name and version from
/// `describe()`) or a policy (which must be valid).
async fn describe(host: &Host, path: &Path, bytes: &[u8]) -> Result<Value, Error> {
    let builder = format!("baton {}", env!("CARGO_PKG_VERSION"));
    let revision = std::env::var("BATON_SOURCE_REVISION").ok();
    let mut predicate = if bytes.starts_with(b"\0asm") {
        // A component Baton cannot run (a test fixture with a forbidden import, say) is
        // still signed: the attestation then says only what it is.
        match host.examine_bytes(path, bytes).await {
            Ok(plugin) => {
                let world = match &plugin.info {
                    Info::Tool(_) => "tool",
                    Info::Prompt(_) => "prompt",
                    Info::Planner(_) => "planner",
                };
                json!({
                    "kind": "component",
                    "world": world,
                    "name": plugin.name(),
                    "version": plugin.info.version(),
                })
            }
            Err(e) => {
                eprintln!(
                    "note: {} is signed without its description: {e}",
                    path.display()
                );
                json!({ "kind": "component" })
            }
        }
    } else if path.extension().is_some_and(|e| e == "toml") {
        Policy::load(path)?;
        json!({ "kind": "policy" })
    } else {
        return Err(Error::Sign {
            path: path.to_owned(),
            reason: "Baton signs components (.wasm) and policy files (.toml)".into(),
        });
    };
    predicate["builder"] = builder.into();
    if let Some(revision) = revision {
        predicate["source_revision"] = revision.into();
    }
    Ok(predicate)
}

pub fn verify(args: VerifyArgs, policies: &[PathBuf]) -> Result<(), Error> {
    let bytes = std::fs::read(&args.file).map_err(|e| Error::Sign {
        path: args.file.clone(),
        reason: e.to_string(),
    })?;
    let digest = Digest::of(&bytes);
    let unverified = |reason: String| Error::Unverified {
        path: args.file.clone(),
        digest: digest.to_string(),
        reason,
    };
    let (signer, trust_root, key) = match &args.key {
        Some(key_path) => {
            let key = read_public_key(key_path)?;
            let signer = format!("key {} ({})", key_path.display(), key.fingerprint);
            check_detached(&args.file, &bytes, &key, &signer).map_err(unverified)?;
            (signer, "the key given with --key".to_string(), Some(key))
        }
        None => {
            let policy = Policy::load_all(policies)?;
            let trust =
                PolicyTrust::new(policy.trust()).map_err(|e| Error::TrustConfig(e.reason))?;
            let provenance = trust
                .check(&bytes, &digest, &Sidecars::beside(&args.file))
                .map_err(|e| unverified(e.reason))?;
            let Provenance::Verified(verified) = provenance else {
                return Err(unverified(
                    "it is unsigned, and the policy does not require signatures".into(),
                ));
            };
            let root = match (verified.key.is_empty(), &policy.trust().trusted_root) {
                (false, _) => "a key the policy's [trust] lists".to_string(),
                (true, Some(_)) => "the trusted root the policy's [trust] names".to_string(),
                (true, None) => "the Sigstore public-good trusted root".to_string(),
            };
            let key = (!verified.key.is_empty())
                .then(|| PublicKey::parse(&verified.key, "the trusted key"))
                .transpose()
                .map_err(|e| Error::TrustConfig(e.to_string()))?;
            (verified.signer, root, key)
        }
    };
    // Printed only once everything has verified.
    let mut report = vec![
        format!("verified {}", args.file.display()),
        format!("  digest       {digest}"),
        format!("  signed by    {signer}"),
        format!("  trusted via  {trust_root}"),
    ];
    match &key {
        Some(key) => {
            report.extend(attestation(&args.file, &digest, key, &signer).map_err(unverified)?)
        }
        None => report.push("  attestation  (in the Sigstore bundle)".into()),
    }
    println!("{}", report.join("\n"));
    Ok(())
}

fn read_public_key(path: &Path) -> Result<PublicKey, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    PublicKey::parse(&text, &path.display().to_string()).map_err(|e| key_error(path, e))
}

/// Checks `FILE.sig` against `key`.
fn check_detached(file: &Path, bytes: &[u8], key: &PublicKey, signer: &str) -> Result<(), String> {
    let sig_path = with_suffix(file, ".sig");
    let sig_text = std::fs::read_to_string(&sig_path).map_err(|_| {
        format!(
            "it has no signature ({} is missing); sign it with `baton sign`",
            sig_path.display()
        )
    })?;
    let signature = BASE64
        .decode(sig_text.trim())
        .map_err(|_| format!("{} is not base64", sig_path.display()))?;
    if !key.verifies(bytes, &signature) {
        return Err(format!(
            "its signature {} does not verify with {signer}: the file was changed, or someone \
             else signed it",
            sig_path.display()
        ));
    }
    Ok(())
}

/// The report lines of the attestation beside `file`, which must be an in-toto statement
/// about exactly these bytes signed by `key` (none is fine).
fn attestation(
    file: &Path,
    digest: &Digest,
    key: &PublicKey,
    signer: &str,
) -> Result<Vec<String>, String> {
    let attestation_path = with_suffix(file, ".intoto.json");
    let Ok(text) = std::fs::read_to_string(&attestation_path) else {
        return Ok(vec!["  attestation  none".into()]);
    };
    let statement = check_attestation(&text, digest, key, signer)
        .map_err(|why| format!("its attestation {} {why}", attestation_path.display()))?;
    let predicate = &statement["predicate"];
    let what = match (predicate["kind"].as_str(), predicate["world"].as_str()) {
        (Some("component"), Some(world)) => format!(
            "{world} component {} {}",
            predicate["name"].as_str().unwrap_or("?"),
            predicate["version"].as_str().unwrap_or("?")
        ),
        (Some("component"), None) => "component (not described)".into(),
        (Some(kind), _) => kind.to_string(),
        (None, _) => "(no predicate)".into(),
    };
    let built = predicate["builder"].as_str().unwrap_or("unknown");
    let mut report = vec![format!("  attestation  {what}, built by {built}")];
    if let Some(revision) = predicate["source_revision"].as_str() {
        report.push(format!("  source       {revision}"));
    }
    Ok(report)
}
