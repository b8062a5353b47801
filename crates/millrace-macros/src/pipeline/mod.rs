//! `pipeline!`: `source => f(args) => .method(args) => …` as plain nested calls.

mod expand;
mod parse;

use proc_macro2::TokenStream;

pub(crate) fn pipeline(input: TokenStream) -> TokenStream {
    let out = match parse::parse(input) {
        Ok(p) => expand::expand(p),
        // No item to keep here: the errors stand in for the expression.
        Err(e) => {
            let errors = e.to_compile_error();
            quote::quote!({ #errors ::core::unreachable!() })
        }
    };
    if std::env::var_os("MILLRACE_MACROS_DEBUG").is_some() {
        eprintln!("// pipeline! expansion:\n{out}\n");
    }
    out
}
