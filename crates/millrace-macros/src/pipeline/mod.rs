//! `pipeline!`: `source => f(args) => .method(args) => …` as plain nested calls.

mod expand;
mod parse;

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};

/// `compile_error! { … }` as `compile_error!( … )`, an expression (same spans).
fn paren_group(tt: TokenTree) -> TokenTree {
    match tt {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
            let mut paren = Group::new(Delimiter::Parenthesis, g.stream());
            paren.set_span(g.span());
            TokenTree::Group(paren)
        }
        other => other,
    }
}

pub(crate) fn pipeline(input: TokenStream) -> TokenStream {
    let out = match parse::parse(input) {
        Ok(p) => expand::expand(p),
        // No item to keep here: the errors stand in for the expression. The last one is the
        // block's value: `compile_error!` in expression position has the type of an error,
        // so the code around the pipeline raises nothing more (no "unreachable code" either).
        Err(e) => {
            let mut errors: Vec<TokenStream> = e
                .into_iter()
                .map(|e| e.to_compile_error().into_iter().map(paren_group).collect())
                .collect();
            let last = errors.pop();
            quote::quote!({ #(#errors;)* #last })
        }
    };
    if std::env::var_os("MILLRACE_MACROS_DEBUG").is_some() {
        eprintln!("// pipeline! expansion:\n{out}\n");
    }
    out
}
