//! Checkpoints: what a stream has delivered so far, handed to restart factories and fallbacks
//! so they resume where the consumer stopped instead of from the beginning.

// (owned by the errors group: Checkpoint, Checkpointer, checkpoint_with)
