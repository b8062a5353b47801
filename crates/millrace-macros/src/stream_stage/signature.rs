//! Pass 2: the function signature — upstream detection, `impl Trait` arguments turned into
//! generic parameters of the struct, and every rejected form.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::visit::Visit;
use syn::{
    FnArg, GenericParam, Generics, Ident, ItemFn, Pat, ReturnType, Type, TypeParam, TypeParamBound,
    WherePredicate, parse_quote,
};

use crate::error::Errors;

/// One parameter of the stage function.
pub(crate) struct Param {
    pub(crate) pat: Pat,
    pub(crate) ty: Type,
}

/// What the signature tells us.
pub(crate) struct Signature {
    /// Generic parameters of the function plus one per `impl Trait` argument, with bounds.
    pub(crate) generics: Generics,
    pub(crate) params: Vec<Param>,
    /// Index in `params` of the upstream (the first stream-typed parameter), if any.
    pub(crate) upstream: Option<usize>,
}

impl Signature {
    /// The identifier of parameter `i` when its pattern is a plain identifier.
    pub(crate) fn ident(&self, i: usize) -> Option<&Ident> {
        plain_ident(&self.params[i].pat)
    }
}

/// `x` or `mut x` (no `ref`, no sub-pattern).
pub(crate) fn plain_ident(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
        _ => None,
    }
}

fn is_stream_bound(bound: &TypeParamBound) -> bool {
    match bound {
        TypeParamBound::Trait(t) => t
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Stream" || s.ident == "FusedStream"),
        _ => false,
    }
}

/// Is `ty` a generic type parameter of `generics` bounded by `Stream`?
fn is_generic_stream(ty: &Type, generics: &Generics) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(ident) = p.path.get_ident() else {
        return false;
    };
    let inline = generics
        .type_params()
        .any(|tp| tp.ident == *ident && tp.bounds.iter().any(is_stream_bound));
    let in_where = generics.where_clause.as_ref().is_some_and(|w| {
        w.predicates.iter().any(|pred| match pred {
            WherePredicate::Type(pt) => {
                matches!(&pt.bounded_ty, Type::Path(b) if b.path.is_ident(ident))
                    && pt.bounds.iter().any(is_stream_bound)
            }
            _ => false,
        })
    });
    inline || in_where
}

fn upper_camel(name: &str) -> String {
    let mut out = String::new();
    for part in name
        .trim_start_matches("r#")
        .split('_')
        .filter(|p| !p.is_empty())
    {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() {
        "Stage".to_owned()
    } else {
        out
    }
}

/// UpperCamelCase of the function name: `enrich_users` -> `EnrichUsers`.
pub(crate) fn struct_name(fn_ident: &Ident) -> Ident {
    Ident::new(&upper_camel(&fn_ident.to_string()), fn_ident.span())
}

/// Finds `impl Trait` nested inside a type and elided lifetimes, which a struct cannot hold.
struct Unsupported<'e> {
    errors: &'e mut Errors,
}

impl<'ast> Visit<'ast> for Unsupported<'_> {
    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        self.errors.push(syn::Error::new(
            t.impl_token.span,
            "`impl Trait` is only supported as the whole type of a stage parameter; use a named generic parameter here",
        ));
    }
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        if r.lifetime.is_none() {
            self.errors.push(syn::Error::new(
                r.and_token.span,
                "stage parameters are stored in the generated struct, so references need a named lifetime: write `&'a T` and declare `<'a>` on the function",
            ));
        }
        syn::visit::visit_type_reference(self, r);
    }
    // `Fn(&T)` sugar and `fn(&T)` pointers have their own (higher-ranked) lifetimes.
    fn visit_parenthesized_generic_arguments(
        &mut self,
        _: &'ast syn::ParenthesizedGenericArguments,
    ) {
    }
    fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}
    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident == "_" {
            self.errors.push(syn::Error::new(
                l.span(),
                "stage parameters are stored in the generated struct, so `'_` cannot be used: name the lifetime",
            ));
        }
    }
}

pub(crate) fn analyze(func: &ItemFn) -> syn::Result<Signature> {
    let sig = &func.sig;
    let mut errors = Errors::default();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            "`#[stream_stage]` must be applied to an `async fn`: write `async fn`, and emit items with `yield_!(value)`",
        ));
    }
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new(
            c.span,
            "a `#[stream_stage]` function cannot be `const`",
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new(
            u.span,
            "a `#[stream_stage]` function cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a `#[stream_stage]` function cannot have an `extern` ABI",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            v,
            "a `#[stream_stage]` function cannot be variadic",
        ));
    }
    if let ReturnType::Type(arrow, ty) = &sig.output {
        let mut tokens = quote::quote!(#arrow);
        tokens.extend(quote::quote!(#ty));
        errors.push(syn::Error::new_spanned(
            tokens,
            "a `#[stream_stage]` function must not declare a return type: it returns the generated stream struct, whose items are declared by `item = <type>`",
        ));
    }
    for param in &sig.generics.params {
        if let GenericParam::Const(c) = param {
            errors.push(syn::Error::new_spanned(
                c,
                "const generic parameters are not supported on a `#[stream_stage]` function",
            ));
        }
    }

    let mut generics = sig.generics.clone();
    let mut taken: HashSet<String> = generics
        .params
        .iter()
        .map(|p| match p {
            GenericParam::Type(t) => t.ident.to_string(),
            GenericParam::Lifetime(l) => l.lifetime.ident.to_string(),
            GenericParam::Const(c) => c.ident.to_string(),
        })
        .collect();
    let mut fresh = |base: String, span: Span| {
        let mut name = base.clone();
        let mut n = 1;
        while !taken.insert(name.clone()) {
            name = format!("{base}{n}");
            n += 1;
        }
        Ident::new(&name, span)
    };

    let mut params = Vec::new();
    let mut upstream = None;
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => errors.push(syn::Error::new_spanned(
                r,
                "`#[stream_stage]` cannot be used on a method with a `self` receiver: make it a free function and pass what you need as parameters",
            )),
            FnArg::Typed(pt) => {
                let mut ty = (*pt.ty).clone();
                let is_stream;
                if let Type::ImplTrait(it) = &ty {
                    is_stream = it.bounds.iter().any(is_stream_bound);
                    let base = if is_stream && upstream.is_none() {
                        "S".to_owned()
                    } else {
                        match plain_ident(&pt.pat) {
                            Some(i) => upper_camel(&i.to_string()),
                            None => format!("Arg{}", params.len()),
                        }
                    };
                    let ident = fresh(base, it.impl_token.span);
                    let bounds = &it.bounds;
                    let tp: TypeParam = parse_quote!(#ident: #bounds);
                    for b in bounds {
                        Unsupported { errors: &mut errors }.visit_type_param_bound(b);
                    }
                    generics.params.push(GenericParam::Type(tp));
                    ty = parse_quote!(#ident);
                } else {
                    is_stream = is_generic_stream(&ty, &sig.generics);
                    Unsupported { errors: &mut errors }.visit_type(&ty);
                }
                if is_stream && upstream.is_none() {
                    if plain_ident(&pt.pat).is_none() {
                        errors.push(syn::Error::new_spanned(
                            &pt.pat,
                            "the upstream parameter of a `#[stream_stage]` must be a plain identifier",
                        ));
                    }
                    upstream = Some(params.len());
                }
                params.push(Param {
                    pat: (*pt.pat).clone(),
                    ty,
                });
            }
        }
    }
    errors.finish()?;
    Ok(Signature {
        generics,
        params,
        upstream,
    })
}

/// The types to put in the `PhantomData` marker: every type parameter and `&'a ()` per lifetime.
pub(crate) fn marker_types(generics: &Generics) -> Vec<Type> {
    generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => {
                let i = &t.ident;
                Some(parse_quote!(#i))
            }
            GenericParam::Lifetime(l) => {
                let l = &l.lifetime;
                Some(parse_quote!(&#l ()))
            }
            GenericParam::Const(_) => None,
        })
        .collect()
}

/// `<'a, S, F>`: the parameters without bounds (for `pin_project!` struct definitions).
pub(crate) fn bare_params(generics: &Generics) -> Vec<proc_macro2::TokenStream> {
    generics
        .params
        .iter()
        .map(|p| match p {
            GenericParam::Type(t) => {
                let i = &t.ident;
                quote::quote!(#i)
            }
            GenericParam::Lifetime(l) => {
                let l = &l.lifetime;
                quote::quote!(#l)
            }
            GenericParam::Const(c) => {
                let i = &c.ident;
                let ty = &c.ty;
                quote::quote!(const #i: #ty)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_names_are_upper_camel_case() {
        let name = |s: &str| struct_name(&syn::parse_str::<Ident>(s).unwrap()).to_string();
        assert_eq!(name("enrich"), "Enrich");
        assert_eq!(name("enrich_users"), "EnrichUsers");
        assert_eq!(name("_fetch__pages_"), "FetchPages");
        assert_eq!(name("r#type"), "Type");
    }

    #[test]
    fn impl_stream_arguments_become_generic_parameters() {
        let f: ItemFn = parse_quote! {
            async fn f<T>(keep: impl Fn(&T) -> bool, items: impl Stream<Item = T> + Send, n: usize) {}
        };
        let sig = analyze(&f).unwrap();
        assert_eq!(sig.upstream, Some(1));
        let names: Vec<String> = sig
            .generics
            .type_params()
            .map(|t| t.ident.to_string())
            .collect();
        assert_eq!(names, ["T", "Keep", "S"]);
    }

    #[test]
    fn a_generic_stream_parameter_is_the_upstream() {
        let f: ItemFn = parse_quote! {
            async fn f<S>(n: usize, s: S) where S: futures::Stream<Item = u8> {}
        };
        assert_eq!(analyze(&f).unwrap().upstream, Some(1));
        let source: ItemFn = parse_quote!(
            async fn pages(n: usize) {}
        );
        assert_eq!(analyze(&source).unwrap().upstream, None);
    }
}
