//! Journal events from bytes, as a bundle's rows hold them: anything that parses as an event
//! has one canonical form, and that form parses back to the same event.

#![no_main]

use baton_journal::chain::canonical;
use baton_journal::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Event>(bytes) else {
        return;
    };
    let first = canonical(&event);
    let back: Event = serde_json::from_slice(&first).expect("canonical JSON parses");
    assert_eq!(back, event, "canonical JSON round-trips");
    assert_eq!(canonical(&back), first, "canonical JSON is stable");
});
