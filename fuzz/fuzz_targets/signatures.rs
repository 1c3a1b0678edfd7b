//! Keys, signatures, DSSE envelopes and Sigstore bundles from bytes: parsing never panics or
//! hangs, nothing forged verifies, and a signature verifies over exactly the bytes it signed.

#![no_main]

use std::sync::OnceLock;

use baton_trust::signing::{Envelope, PublicKey, SigningKey, generate};
use baton_trust::sigstore::{Signer, verify_bundle};
use libfuzzer_sys::fuzz_target;

const PASSWORD: &[u8] = b"fuzz";

/// One key pair for the whole run (scrypt is slow on purpose).
fn keys() -> &'static (SigningKey, PublicKey, String) {
    static KEYS: OnceLock<(SigningKey, PublicKey, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (private, public) = generate(PASSWORD).expect("a key pair");
        let signing = SigningKey::open(&private, "fuzz.key", PASSWORD).expect("it opens");
        let verifying = PublicKey::parse(&public, "fuzz.pub").expect("it parses");
        (signing, verifying, public)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let (signing, public, pem) = keys();
    let text = String::from_utf8_lossy(bytes);
    // Hostile key files: refused, never a hang (scrypt's work is bounded).
    let _ = SigningKey::open(&text, "fuzz.key", PASSWORD);
    let _ = PublicKey::parse(&text, "fuzz.pub");
    // A fuzzed envelope is signed by nobody we hold.
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(bytes) {
        assert!(envelope.open(public).is_none(), "a fuzzed envelope opened");
    }
    // A fuzzed Sigstore bundle does not verify for our key.
    let signer = Signer::Key { pem: pem.clone() };
    assert!(verify_bundle(b"artifact", &text, &signer, None).is_err());
    // A signature verifies over exactly what it signed.
    let Some((&flip, data)) = bytes.split_first() else {
        return;
    };
    let signature = signing.sign(data).expect("it signs");
    assert!(public.verifies(data, &signature));
    let mut changed = data.to_vec();
    match changed.get_mut(usize::from(flip) % data.len().max(1)) {
        Some(byte) => *byte ^= 1 | (flip >> 1),
        None => changed.push(flip),
    }
    assert!(
        !public.verifies(&changed, &signature),
        "a signature verified other bytes"
    );
});
