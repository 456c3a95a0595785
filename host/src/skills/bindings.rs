//! Host bindings generated from `wit/skill.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "skill",
    exports: { default: async },
});
