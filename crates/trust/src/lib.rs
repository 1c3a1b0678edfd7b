//! The trust decision Baton makes on a component's (or a policy's) bytes before anything
//! compiles them, and the signatures it rests on:
//!
//! - [`signing`]: ECDSA P-256 keys, detached signatures and DSSE/in-toto attestations in the
//!   formats cosign writes;
//! - [`sigstore`]: offline verification of Sigstore bundles, keyed and keyless;
//! - [`policy`]: the trust a policy grants (keys, keyless identities, required signatures);
//! - [`check`]: the decision itself, by a policy ([`check::PolicyTrust`]) or by what a
//!   recorded run says signed its components ([`check::RecordedTrust`]).
//!
//! It depends only on `baton-core`.

pub mod check;
pub mod policy;
pub mod signing;
pub mod sigstore;
