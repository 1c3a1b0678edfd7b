//! Checkpoints of the transparency log of runs, in the C2SP signed-note form transparency
//! logs use:
//!
//! ```text
//! baton-host/5c1f0e3a9b2d4e71      origin: the log, named after the host's key
//! 42                               the number of runs logged
//! 3q2+7w==…                        the root hash, base64
//!
//! — baton-host/5c1f0e3a9b2d4e71 AAAABMEUCIQ…
//! ```
//!
//! The signature line is an em dash, the key's name (the origin) and base64 of a 4-byte key
//! hint (the first bytes of the SHA-256 of the key's DER SubjectPublicKeyInfo, as Rekor's
//! ECDSA checkpoints have it) followed by the DER ECDSA P-256 signature over the body.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use baton_journal::tlog::Hash;
use baton_trust::signing::{PublicKey, SigningKey};
use sha2::{Digest, Sha256};

/// What a checkpoint says of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// A public key as checkpoints name it: its hint and the origin of its log.
pub struct NoteKey {
    pub name: String,
    pub key: PublicKey,
    hint: [u8; 4],
}

impl NoteKey {
    /// The key whose PEM is `pem`, named `name` in messages.
    pub fn parse(name: &str, pem: &str) -> Result<Self, String> {
        let key = PublicKey::parse(pem, name).map_err(|e| e.to_string())?;
        Ok(Self {
            name: name.into(),
            key,
            hint: hint(pem)?,
        })
    }

    /// The origin of the log this key signs.
    pub fn origin(&self) -> String {
        origin_of(&self.hint)
    }
}

fn hint(pem: &str) -> Result<[u8; 4], String> {
    let der = pem::parse(pem).map_err(|e| format!("not a PEM public key: {e}"))?;
    let digest = Sha256::digest(der.contents());
    Ok([digest[0], digest[1], digest[2], digest[3]])
}

fn origin_of(hint: &[u8; 4]) -> String {
    format!("baton-host/{}", hex::encode(hint))
}

impl Checkpoint {
    /// The checkpoint of a log of `size` runs with `root`, by the key whose public PEM is
    /// `public`.
    pub fn of(public: &str, size: u64, root: Hash) -> Result<Self, String> {
        Ok(Self {
            origin: origin_of(&hint(public)?),
            size,
            root,
        })
    }

    fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// The signed note: the body, a blank line and the signature line.
    pub fn sign(&self, key: &SigningKey, public: &str) -> Result<String, String> {
        let body = self.body();
        let signature = key.sign(body.as_bytes()).map_err(|e| e.to_string())?;
        let mut signed = hint(public)?.to_vec();
        signed.extend(signature);
        Ok(format!(
            "{body}\n\u{2014} {} {}\n",
            self.origin,
            STANDARD.encode(signed)
        ))
    }

    /// Reads the signed note `note` and checks that one of `keys` signed it; returns the
    /// checkpoint and the name of the key.
    pub fn open(note: &str, keys: &[NoteKey]) -> Result<(Self, String), String> {
        let (body, signatures) = note
            .split_once("\n\n")
            .ok_or("it is not a signed note (no blank line before its signatures)")?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err("its body is not origin, size and root".into());
        };
        let size: u64 = size
            .parse()
            .map_err(|_| format!("'{size}' is not a tree size"))?;
        let root: Hash = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or("its root is not a base64 SHA-256 hash")?;
        for line in signatures.lines() {
            let Some((name, signature)) = line
                .strip_prefix("\u{2014} ")
                .and_then(|rest| rest.split_once(' '))
            else {
                continue;
            };
            let Ok(signed) = STANDARD.decode(signature) else {
                continue;
            };
            let Some((line_hint, signature)) = signed.split_at_checked(4) else {
                continue;
            };
            let signer = keys.iter().find(|k| {
                k.hint == line_hint
                    && name == origin
                    && k.origin() == origin
                    && k.key.verifies(body.as_bytes(), signature)
            });
            if let Some(signer) = signer {
                let checkpoint = Self {
                    origin: origin.into(),
                    size,
                    root,
                };
                return Ok((checkpoint, signer.name.clone()));
            }
        }
        Err(format!(
            "no signature on it verifies with {}",
            keys.iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}
