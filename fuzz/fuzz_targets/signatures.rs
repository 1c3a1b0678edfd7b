//! Keys, signatures, DSSE envelopes and Sigstore bundles from bytes: parsing never panics or
//! hangs, nothing forged verifies, and a signature verifies over exactly the bytes it signed.
//! Every verdict on a signature is checked against a second implementation of ECDSA P-256
//! (RustCrypto's `p256`), including the malleated and re-encoded forms of a real signature.

#![no_main]

use std::sync::OnceLock;

use baton_trust::signing::{Envelope, PublicKey, SigningKey, generate};
use baton_trust::sigstore::{Signer, verify_bundle};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

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
    // A P-256 key the second implementation reads, Baton reads too.
    if VerifyingKey::from_public_key_pem(&text).is_ok() {
        assert!(
            PublicKey::parse(&text, "fuzz.pub").is_ok(),
            "a P-256 key was refused"
        );
    }
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
    let second = VerifyingKey::from_public_key_pem(pem).expect("p256 reads our key");
    let agree = |candidate: &[u8], what: &str| {
        let theirs = Signature::from_der(candidate).is_ok_and(|s| second.verify(data, &s).is_ok());
        assert_eq!(
            public.verifies(data, candidate),
            theirs,
            "the verdicts differ on {what}"
        );
    };
    agree(&signature, "a real signature");
    // Fuzzed bytes as a signature over the data.
    agree(bytes, "fuzzed bytes");
    let real = Signature::from_der(&signature).expect("p256 reads our signature");
    // The same signature with s replaced by n - s (valid for ECDSA itself; a verifier that
    // insists on low s would refuse one of the two).
    let (r, s) = real.split_scalars();
    let high = Signature::from_scalars(r, -*s).expect("n - s is a scalar");
    agree(high.to_der().as_bytes(), "the malleated signature");
    // Re-encodings: a trailing byte, and a length read past the end.
    let mut trailing = signature.clone();
    trailing.push(flip);
    agree(&trailing, "a signature with a trailing byte");
    let mut longer = signature.clone();
    longer[1] = longer[1].wrapping_add(flip | 1);
    agree(&longer, "a signature whose length is wrong");
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
