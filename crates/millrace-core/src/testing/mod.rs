//! The public testing kit.
