//! Free constructors of source stages: streams that are built from a factory or a resource
//! rather than from an upstream stream.

// BEGIN sources: errors
// END sources: errors

// BEGIN sources: resources
// END sources: resources
