use millrace::prelude::*;

fn not_a_string() {
    let _ = pipeline! { futures::stream::iter([1u32]) => 7: .map(|x| x + 1) };
}

fn an_identifier() {
    let _ = pipeline! { futures::stream::iter([1u32]) => fetch: .map(|x| x + 1) };
}

fn empty() {
    let _ = pipeline! { futures::stream::iter([1u32]) => " ": .map(|x| x + 1) };
}

fn control_characters() {
    let _ = pipeline! { futures::stream::iter([1u32]) => "two\nlines": .map(|x| x + 1) };
}

fn nothing_after_the_name() {
    let _ = pipeline! { futures::stream::iter([1u32]) => "fetch": };
}

fn the_same_name_twice() {
    let _ = pipeline! {
        "numbers": futures::stream::iter([1u32])
        => "step": .map(|x| x + 1)
        => "step": .map(|x| x * 2)
    };
}

fn naming_the_placeholder() {
    let _ = pipeline! { "input": _ => .map(|x: u32| x + 1) };
}

fn main() {
    not_a_string();
    an_identifier();
    empty();
    control_characters();
    nothing_after_the_name();
    the_same_name_twice();
    naming_the_placeholder();
}
