//! Policy files: any text layered over the built-in policy either is refused with an error or
//! gives a policy whose every query answers; a policy that loads loads again the same. Every
//! deadline and budget it gives can be added to the clock.

#![no_main]

use baton_core::limits::MAX_DURATION;
use baton_policy::{LimitsSpec, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let builtin = Policy::builtin();
    let mut texts: Vec<(String, String)> = builtin
        .texts()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    texts.push(("fuzz/policy.toml".into(), text.to_string()));
    let Ok(policy) = Policy::from_texts(texts.clone()) else {
        return;
    };
    for plugin in policy.plugin_sections() {
        let grants = policy.grants_for(&plugin, "");
        let limits = policy
            .limits_for(&plugin, "", &LimitsSpec::default())
            .limits;
        assert!(limits.timeout <= MAX_DURATION, "a timeout past the clock");
        let _ = policy.flow_for(&plugin, "");
        for mount in &grants.fs {
            let _ = policy.flow().directory(mount);
        }
        let _ = baton_policy::explain::explain(&policy, &plugin, "".into(), &[]);
    }
    let names: Vec<String> = policy.plugin_sections();
    let components: Vec<(&str, baton_policy::Subject)> =
        names.iter().map(|n| (n.as_str(), "".into())).collect();
    let _ = baton_policy::routes::routes(&policy, &components);
    let budget = policy.run_budget();
    assert!(
        budget.time.is_none_or(|t| t <= MAX_DURATION),
        "a budget past the clock"
    );
    let _ = policy.journal_max_bytes();
    let again = Policy::from_texts(texts).expect("a policy that loaded loads again");
    assert_eq!(
        again.plugin_sections(),
        policy.plugin_sections(),
        "the same texts give the same policy"
    );
});
