//! Webhook ingress. For now: the platforms' signature checks, which every route runs on the raw
//! body before parsing anything (the axum routes come with the chat pipeline).

pub mod verify;
