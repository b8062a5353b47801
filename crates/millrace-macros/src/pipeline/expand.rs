//! Pass 2 of `pipeline!`: plain nested calls, each stage passed through the zero-cost
//! `__private::stage(name, value)` hook (spanned at the stage, so a stage that does not produce
//! a stream is reported there).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::parse::{Head, Pipeline, StageKind};

pub(crate) fn expand(p: Pipeline) -> TokenStream {
    let krate = &p.krate;
    let private = quote!(#krate::__private);
    let (mut cur, reusable) = match &p.head {
        Head::Source(e) => {
            let name = &p.head_name;
            (
                quote_spanned!(p.head_span=> #private::stage(#name, #e)),
                None,
            )
        }
        Head::Placeholder(ty) => (quote!(__millrace_upstream), Some(ty)),
    };
    for stage in &p.stages {
        let span = stage.span;
        let name = &stage.name;
        // Each upstream is bound by a `match` (temporaries live as long as in nested calls) to
        // an identifier spanned at the stage that consumes it, so an upstream of the wrong type
        // is reported at that stage, not across the whole pipeline.
        let up = quote_spanned!(span=> __millrace_upstream);
        let call = match &stage.kind {
            StageKind::Call { func, args } => {
                if args.is_empty() {
                    quote_spanned!(span=> #func(#up))
                } else {
                    quote_spanned!(span=> #func(#up, #args))
                }
            }
            StageKind::Path(func) => quote_spanned!(span=> #func(#up)),
            StageKind::Method(tokens) => quote_spanned!(span=> #up #tokens),
        };
        cur = quote_spanned! {span=>
            match #cur {
                __millrace_upstream => #private::stage(#name, #call),
            }
        };
    }
    match reusable {
        Some(Some(ty)) => quote!(#krate::stage_fn(move |__millrace_upstream: #ty| #cur)),
        Some(None) => quote!(#krate::stage_fn(move |__millrace_upstream| #cur)),
        None => cur,
    }
}
