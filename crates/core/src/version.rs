//! Changes to tables (in progress).
