//! Policies that configure wrappers: retry backoff, supervision of errors, rates.

// BEGIN policy: errors
// END policy: errors

// BEGIN policy: concurrency
// END policy: concurrency
