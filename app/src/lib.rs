//! The product catalog: domain -> ports -> adapters -> HTTP -> entry (Lambda or localhost).

pub mod adapters;
pub mod auth;
pub mod decode;
pub mod domain;
pub mod entry;
pub mod http;
pub mod import;
pub mod ports;
pub mod service;
pub mod wire;
