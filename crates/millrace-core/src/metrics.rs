//! Per-stage metrics readable live from a [`Metrics`] handle.

// (owned by the resources group)
