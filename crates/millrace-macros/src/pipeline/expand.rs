//! Pass 2 of `pipeline!`: plain nested calls, each stage passed through the zero-cost
//! `__private::stage(name, value)` check (spanned at the stage, so a stage that does not produce
//! a stream is reported there), then — unless `metrics = off;` — metered under its name into
//! the chosen registry, adopting the retry/fallback/skip counters and gauges of the stage when
//! it has them, fed by the stage before it (`items_in`), timed and traced when asked.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::parse::{Head, Metering, Pipeline, StageKind};

/// One stage's value: `call` checked to be a stream at `span` and, unless `metrics = off`,
/// metered under `name` (the check is the metering call's own bound, so a stage that is not a
/// stream gets exactly one error, at the stage). `fed`: whether `__millrace_fed` holds the
/// metrics of the stage before (every stage but the source).
fn stage_value(p: &Pipeline, name: &str, span: Span, call: TokenStream, fed: bool) -> TokenStream {
    let krate = &p.krate;
    let private = quote!(#krate::__private);
    let registry = match &p.metering {
        Metering::Off => return quote_spanned!(span=> #private::stage(#name, #call)),
        Metering::Global => quote!(#krate::Metrics::global()),
        Metering::Registry(_) => quote!(__millrace_metrics),
    };
    let metered = quote_spanned!(span=> #private::metered_stage(#registry, #name, #call));
    // `__millrace_fed` is bound next to `__millrace_upstream`, with the stage's span (the
    // same hygiene as that binding: `quote!`'s call-site span is inside the facade's
    // `macro_rules!`, where a local of the user's span is not visible).
    let fed_ident = quote_spanned!(span=> __millrace_fed);
    let feed = fed.then(|| quote!(__millrace_stage.metrics().fed_by(&#fed_ident);));
    let timing = p.timing.then(|| quote!(.with_timing()));
    let tracing = p.tracing.then(|| quote!(.traced()));
    quote! {
        match #metered {
            __millrace_stage => {
                {
                    #[allow(unused_imports)]
                    use #private::{__AdoptEvents as _, __NoEvents as _};
                    (&#private::__EventsProbe(&__millrace_stage)).__adopt_events();
                }
                #feed
                __millrace_stage #tracing #timing
            }
        }
    }
}

pub(crate) fn expand(p: Pipeline) -> TokenStream {
    let krate = &p.krate;
    let (mut cur, reusable) = match &p.head {
        Head::Source(e) => {
            let name = &p.head_name;
            (stage_value(&p, name, p.head_span, quote!(#e), false), None)
        }
        Head::Placeholder(ty) => (quote!(__millrace_upstream), Some(ty)),
    };
    // Whether `cur` is still the reusable stage's input (not a metered stage).
    let mut cur_is_input = reusable.is_some();
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
        // Metered, the upstream is a `Metered` stage (except the upstream of a reusable
        // stage, which is the caller's stream): its counters feed this stage's `items_in`.
        let fed = !matches!(p.metering, Metering::Off) && !cur_is_input;
        let fed_by = fed.then(|| quote_spanned!(span=> let __millrace_fed = #up.metrics();));
        let value = stage_value(&p, name, span, call, fed);
        cur = quote_spanned! {span=>
            match #cur {
                __millrace_upstream => {
                    #fed_by
                    #value
                }
            }
        };
        cur_is_input = false;
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
