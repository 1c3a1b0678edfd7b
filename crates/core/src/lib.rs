//! The vocabulary every Baton crate shares, and nothing else: a component's content
//! [`digest`], the [`limits`] one call runs under (with the typed error for each it can
//! exceed), the [`text`] helpers that keep guest-supplied text fit for a one-line message, and
//! how a component's [`source`] is named (a file or an OCI reference).
//!
//! It sits at the bottom of the workspace and depends on no other Baton crate.

pub mod digest;
pub mod limits;
pub mod source;
pub mod text;

pub use digest::Digest;
