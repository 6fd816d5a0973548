//! Tables over HTTP: created from rows or uploads, read page by page at any version, changed
//! by operations (each change a new version), diffed and reverted.

pub(crate) mod bulk;
pub mod jobs;
pub mod order;
mod preview;
pub mod routes;
pub mod rows;
pub mod service;
mod spill;
