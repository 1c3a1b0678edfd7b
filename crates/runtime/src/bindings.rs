//! Host-side bindings for the `baton:plugin` contract in `wit/`.
//!
//! One generated world carries every import a plugin may use and all three export
//! interfaces. A component exports only one of them; its world is found from its exports
//! (see `loader::world`) and the matching interface is loaded per call through the
//! generated `GuestIndices`.

wasmtime::component::bindgen!({
    path: "../../wit",
    inline: "
        package baton:host;

        world host {
            include baton:plugin/imports@0.1.0;
            import baton:plugin/plan@0.1.0;
            export baton:plugin/tool-api@0.1.0;
            export baton:plugin/prompt-api@0.1.0;
            export baton:plugin/planner-api@0.1.0;
        }
    ",
    world: "baton:host/host",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::baton::plugin::types;
pub use self::exports::baton::plugin::{planner_api, prompt_api, tool_api};
