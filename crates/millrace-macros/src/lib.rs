//! Procedural macros of millrace. Users depend on the `millrace` crate, which re-exports them;
//! generated code refers to `::millrace::__private` only.
