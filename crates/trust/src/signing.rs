//! Keys, signatures and attestations in the formats Sigstore's tools use, so that Baton's
//! interoperate with theirs:
//!
//! - keys: ECDSA P-256; the private key as cosign writes it (`ENCRYPTED SIGSTORE PRIVATE KEY`:
//!   PKCS#8 sealed with NaCl secretbox under a scrypt-derived key), the public key as a PEM
//!   `PUBLIC KEY` (SubjectPublicKeyInfo);
//! - detached signatures as `cosign sign-blob --key` writes them: base64 of the DER ECDSA
//!   signature over the file (SHA-256 inside the scheme, not pre-hashed);
//! - attestations: a DSSE envelope (`application/vnd.in-toto+json`) over an in-toto Statement
//!   v1 whose subject is the file's name and sha256.
//!
//! Verification goes through `sigstore-crypto`, the verifier `sigstore-verify` uses.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use serde::{Deserialize, Serialize};
use sigstore_crypto::VerificationKey;
use sigstore_types::{DerPublicKey, SignatureBytes};

use baton_core::Digest;

/// The PEM label cosign gives an encrypted private key.
const PRIVATE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// scrypt cost as cosign sets it: N = 2^16, r = 8, p = 1.
const SCRYPT_LOG_N: u8 = 16;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// The most a key file may ask scrypt for: N up to 2^20, 128·r·N bytes up to 1 GiB, and p up
/// to 16. Keys from `baton keygen` and cosign ask for 2^15 or 2^16, r = 8, p = 1; a file asking
/// for more would hold the command for hours or exhaust memory before its password is checked.
const SCRYPT_MAX_LOG_N: u32 = 20;
const SCRYPT_MAX_MEMORY: u64 = 1 << 30;
const SCRYPT_MAX_P: u32 = 16;

/// DSSE payload type of an in-toto Statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement version Baton writes.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of Baton's attestations: what an artifact is and what built it.
pub const PREDICATE_TYPE: &str = "urn:baton:predicate:artifact:v1";

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{0} is not a PEM file")]
    NotPem(String),
    #[error("{what} is not {expected}")]
    WrongKind {
        what: String,
        expected: &'static str,
    },
    #[error("the private key cannot be decrypted: wrong password, or the key is damaged")]
    WrongPassword,
    #[error("the private key is malformed: {0}")]
    BadPrivateKey(String),
    #[error("the public key is malformed: {0}")]
    BadPublicKey(String),
    #[error("cannot {0}")]
    Crypto(&'static str),
}

/// cosign's JSON inside `ENCRYPTED SIGSTORE PRIVATE KEY`.
#[derive(Serialize, Deserialize)]
struct SealedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)] // cosign's field names
struct KdfParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// A signing key, decrypted.
pub struct SigningKey {
    pair: EcdsaKeyPair,
}

/// A new key pair: (encrypted private key PEM, public key PEM).
pub fn generate(password: &[u8]) -> Result<(String, String), SignError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| SignError::Crypto("generate a key"))?;
    let key = SigningKey::from_pkcs8(pkcs8.as_ref())?;
    Ok((seal(pkcs8.as_ref(), password)?, key.public_pem()?))
}

/// Encrypts PKCS#8 bytes as cosign does.
fn seal(pkcs8: &[u8], password: &[u8]) -> Result<String, SignError> {
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    rand::fill(&mut salt);
    rand::fill(&mut nonce);
    let key = derive(password, &salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)?;
    let ciphertext = XSalsa20Poly1305::new(&key.into())
        .encrypt(&nonce.into(), pkcs8)
        .map_err(|_| SignError::Crypto("encrypt the private key"))?;
    let sealed = SealedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params: KdfParams {
                N: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: BASE64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: BASE64.encode(nonce),
        },
        ciphertext: BASE64.encode(ciphertext),
    };
    let json = serde_json::to_vec(&sealed).expect("the sealed key serializes");
    Ok(pem::encode(&pem::Pem::new(PRIVATE_LABEL, json)))
}

fn derive(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<[u8; 32], SignError> {
    let params = scrypt::Params::new(log_n, r, p)
        .map_err(|_| SignError::BadPrivateKey("its scrypt parameters are out of range".into()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key)
        .map_err(|_| SignError::Crypto("derive the key encryption key"))?;
    Ok(key)
}

impl SigningKey {
    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, SignError> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
            .map(|pair| Self { pair })
            .map_err(|_| SignError::BadPrivateKey("it is not an ECDSA P-256 PKCS#8 key".into()))
    }

    /// Decrypts a cosign-format private key (`what` names it in errors).
    pub fn open(text: &str, what: &str, password: &[u8]) -> Result<Self, SignError> {
        let pem = pem::parse(text).map_err(|_| SignError::NotPem(what.into()))?;
        if pem.tag() != PRIVATE_LABEL {
            return Err(SignError::WrongKind {
                what: format!("{what} ({})", pem.tag()),
                expected: "an encrypted Sigstore private key (see `baton keygen`)",
            });
        }
        let sealed: SealedKey = serde_json::from_slice(pem.contents())
            .map_err(|e| SignError::BadPrivateKey(e.to_string()))?;
        if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
            return Err(SignError::BadPrivateKey(format!(
                "it uses {} and {}, not scrypt and nacl/secretbox",
                sealed.kdf.name, sealed.cipher.name
            )));
        }
        let bytes = |field: &str, text: &str| {
            BASE64
                .decode(text)
                .map_err(|_| SignError::BadPrivateKey(format!("its {field} is not base64")))
        };
        let salt = bytes("salt", &sealed.kdf.salt)?;
        let nonce: [u8; 24] = bytes("nonce", &sealed.cipher.nonce)?
            .try_into()
            .map_err(|_| SignError::BadPrivateKey("its nonce is not 24 bytes".into()))?;
        let ciphertext = bytes("ciphertext", &sealed.ciphertext)?;
        let params = &sealed.kdf.params;
        if !params.N.is_power_of_two() {
            return Err(SignError::BadPrivateKey(
                "its scrypt N is not a power of two".into(),
            ));
        }
        let memory = 128u64
            .saturating_mul(u64::from(params.r))
            .saturating_mul(params.N);
        if params.N.trailing_zeros() > SCRYPT_MAX_LOG_N
            || memory > SCRYPT_MAX_MEMORY
            || params.p > SCRYPT_MAX_P
        {
            return Err(SignError::BadPrivateKey(format!(
                "its scrypt parameters (N = {}, r = {}, p = {}) ask for more work than Baton \
                 allows (N up to 2^{SCRYPT_MAX_LOG_N}, 128·r·N up to 1 GiB, p up to \
                 {SCRYPT_MAX_P}); a key from `baton keygen` or cosign asks for N = 65536, r = 8, \
                 p = 1",
                params.N, params.r, params.p
            )));
        }
        let key = derive(
            password,
            &salt,
            params.N.trailing_zeros() as u8,
            params.r,
            params.p,
        )?;
        let pkcs8 = XSalsa20Poly1305::new(&key.into())
            .decrypt(&nonce.into(), ciphertext.as_slice())
            .map_err(|_| SignError::WrongPassword)?;
        Self::from_pkcs8(&pkcs8)
    }

    /// A detached signature over `data`: DER ECDSA P-256 with SHA-256.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), data)
            .map_err(|_| SignError::Crypto("sign"))?;
        Ok(signature.as_ref().to_vec())
    }

    /// The public key as a PEM `PUBLIC KEY`.
    pub fn public_pem(&self) -> Result<String, SignError> {
        let der = self
            .pair
            .public_key()
            .as_der()
            .map_err(|_| SignError::Crypto("encode the public key"))?;
        Ok(pem::encode(&pem::Pem::new(
            "PUBLIC KEY",
            der.as_ref().to_vec(),
        )))
    }
}

/// A public key that signatures are checked against.
pub struct PublicKey {
    key: VerificationKey,
    /// `sha256:` of its DER encoding: how messages and the journal name the signer.
    pub fingerprint: String,
}

impl PublicKey {
    pub fn parse(text: &str, what: &str) -> Result<Self, SignError> {
        let pem = pem::parse(text).map_err(|_| SignError::NotPem(what.into()))?;
        if pem.tag() != "PUBLIC KEY" {
            return Err(SignError::WrongKind {
                what: format!("{what} ({})", pem.tag()),
                expected: "a PEM public key",
            });
        }
        let der = DerPublicKey::new(pem.contents().to_vec());
        let key =
            VerificationKey::from_spki(&der).map_err(|e| SignError::BadPublicKey(e.to_string()))?;
        Ok(Self {
            key,
            fingerprint: Digest::of(pem.contents()).to_string(),
        })
    }

    /// Whether `signature` (DER) signs `data` with this key.
    pub fn verifies(&self, data: &[u8], signature: &[u8]) -> bool {
        let signature = SignatureBytes::new(signature.to_vec());
        self.key.verify(data, &signature).is_ok()
    }
}

/// DSSE's pre-authentication encoding: what an envelope's signatures sign.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the payload.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the DER signature over the PAE.
    pub sig: String,
}

impl Envelope {
    /// Signs `payload` (of `payload_type`) with `key`.
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Result<Self, SignError> {
        let sig = key.sign(&pae(payload_type, payload))?;
        Ok(Self {
            payload: BASE64.encode(payload),
            payload_type: payload_type.into(),
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig: BASE64.encode(sig),
            }],
        })
    }

    /// The payload, if one of the signatures verifies with `key`.
    pub fn open(&self, key: &PublicKey) -> Option<Vec<u8>> {
        let payload = BASE64.decode(&self.payload).ok()?;
        let signed = pae(&self.payload_type, &payload);
        self.signatures
            .iter()
            .filter_map(|s| BASE64.decode(&s.sig).ok())
            .any(|sig| key.verifies(&signed, &sig))
            .then_some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification() {
        // The example from the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn keys_round_trip_and_refuse_the_wrong_password() {
        let (private, public) = generate(b"correct horse").unwrap();
        assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let key = SigningKey::open(&private, "k", b"correct horse").unwrap();
        let public = PublicKey::parse(&public, "p").unwrap();
        let signature = key.sign(b"the file").unwrap();
        assert!(public.verifies(b"the file", &signature));
        assert!(!public.verifies(b"the file!", &signature));
        assert!(matches!(
            SigningKey::open(&private, "k", b"wrong"),
            Err(SignError::WrongPassword)
        ));
    }

    /// A key file asking scrypt for 2^40 rounds (or terabytes) is refused before any work,
    /// rather than holding the command for hours.
    #[test]
    fn a_key_asking_for_unbounded_scrypt_work_is_refused_at_once() {
        let (private, _) = generate(b"pw").unwrap();
        let pem = pem::parse(&private).unwrap();
        let mut sealed: serde_json::Value = serde_json::from_slice(pem.contents()).unwrap();
        for (n, r, p) in [
            (1u64 << 40, 8, 1),
            (1 << 16, 1 << 20, 1),
            (1 << 16, 8, 1 << 30),
        ] {
            sealed["kdf"]["params"] = serde_json::json!({"N": n, "r": r, "p": p});
            let hostile = pem::encode(&pem::Pem::new(
                PRIVATE_LABEL,
                serde_json::to_vec(&sealed).unwrap(),
            ));
            match SigningKey::open(&hostile, "k", b"pw") {
                Err(SignError::BadPrivateKey(message)) => {
                    assert!(
                        message.contains("ask for more work than Baton allows"),
                        "{message}"
                    )
                }
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("a key with N = {n}, r = {r}, p = {p} opened"),
            }
        }
    }
}
