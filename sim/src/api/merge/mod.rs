//! Merging: strategic merge patch, server-side apply with managedFields, and the list
//! semantics (atomic, set, map) both rely on.

pub mod apply;
pub mod list_types;
pub mod strategic;
