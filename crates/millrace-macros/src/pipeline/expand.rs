//! Pass 2 of `pipeline!`: plain nested calls, each stage passed through the zero-cost
//! `__private::stage(name, value)` check (spanned at the stage, so a stage that does not produce
//! a stream is reported there), then — unless `metrics = off;` — metered under its name into
//! the chosen registry, adopting the retry/fallback/skip counters and gauges of the stage when
//! it has them, fed by the stage before it (`items_in`), timed and traced when asked.
//!
//! Metered, each stage's value is a pair `(stream, its counters)`, so the next stage is fed by
//! the counters without borrowing the built stream (the final value drops the counters).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::parse::{Head, Metering, Pipeline, StageKind};

/// One stage's value: `call` checked to be a stream at `span` and, unless `metrics = off`,
/// metered under `name` (the check is the metering call's own bound, so a stage that is not a
/// stream gets exactly one error, at the stage) and paired with its counters. Metered, the
/// stage is fed by `__millrace_fed` (an `Option` of the counters of the stage before), bound
/// by the caller with the stage's span: the same hygiene as `__millrace_upstream` (`quote!`'s
/// call-site span is inside the facade's `macro_rules!`, where a local of the user's span is
/// not visible).
fn stage_value(p: &Pipeline, name: &str, span: Span, call: TokenStream) -> TokenStream {
    let krate = &p.krate;
    let private = quote!(#krate::__private);
    let registry = match &p.metering {
        Metering::Off => return quote_spanned!(span=> #private::stage(#name, #call)),
        Metering::Global => quote!(#krate::Metrics::global()),
        Metering::Registry(_) => quote!(__millrace_metrics),
    };
    let fed = quote_spanned!(span=> __millrace_fed);
    let metered = quote_spanned!(span=> #private::metered_stage(#registry, #name, #fed, #call));
    let timing = p.timing.then(|| quote!(.with_timing()));
    let tracing = p.tracing.then(|| quote!(.traced()));
    quote! {
        match #metered {
            (__millrace_stage, __millrace_counters) => {
                {
                    #[allow(unused_imports)]
                    use #private::{__AdoptEvents as _, __NoEvents as _};
                    (&#private::__EventsProbe(&__millrace_stage)).__adopt_events();
                }
                (__millrace_stage #tracing #timing, __millrace_counters)
            }
        }
    }
}

pub(crate) fn expand(p: Pipeline) -> TokenStream {
    let krate = &p.krate;
    let metered = !matches!(p.metering, Metering::Off);
    // What each stage's `match` binds its upstream value to: the stream, or (metered) the
    // pair of the stream and the counters that feed the stage.
    let binding = |span: Span| {
        if metered {
            quote_spanned!(span=> (__millrace_upstream, __millrace_fed))
        } else {
            quote_spanned!(span=> __millrace_upstream)
        }
    };
    let (mut cur, reusable) = match &p.head {
        Head::Source(e) => {
            let name = &p.head_name;
            let span = p.head_span;
            let value = stage_value(&p, name, span, quote!(#e));
            // The source is fed by nothing.
            let value = if metered {
                quote_spanned! {span=> {
                    let __millrace_fed = ::core::option::Option::None;
                    #value
                }}
            } else {
                value
            };
            (value, None)
        }
        Head::Placeholder(ty) => {
            // A reusable stage's input is the caller's stream: nothing feeds its first stage.
            let input = if metered {
                quote!((__millrace_upstream, ::core::option::Option::None))
            } else {
                quote!(__millrace_upstream)
            };
            (input, Some(ty))
        }
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
        let value = stage_value(&p, name, span, call);
        let bind = binding(span);
        cur = quote_spanned! {span=>
            match #cur {
                #bind => #value,
            }
        };
    }
    if metered {
        // The pipeline's value is the last stage; its counters were only for a next stage.
        cur = quote! {
            match #cur {
                (__millrace_last, _) => __millrace_last,
            }
        };
    }
    let body = match reusable {
        Some(Some(ty)) => quote!(#krate::stage_fn(move |__millrace_upstream: #ty| #cur)),
        Some(None) => quote!(#krate::stage_fn(move |__millrace_upstream| #cur)),
        None => cur,
    };
    match &p.metering {
        // Evaluated once, whatever the number of stages.
        Metering::Registry(registry) => quote! {{
            let __millrace_metrics: &#krate::Metrics = #registry;
            #body
        }},
        Metering::Global | Metering::Off => body,
    }
}
