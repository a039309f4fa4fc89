//! cairn-tui: the ratatui terminal interface.
//!
//! Planned. Nothing is implemented here yet; the crate exists so that the workspace has its final
//! shape from the start.
