use millrace::prelude::*;

fn unknown_option() {
    let _ = pipeline! { timming = on; futures::stream::iter([1]) => .map(|x: i32| x) };
}

fn option_set_twice() {
    let _ = pipeline! { timing = on; timing = off; futures::stream::iter([1]) => .map(|x: i32| x) };
}

fn not_on_or_off() {
    let _ = pipeline! { tracing = yes; futures::stream::iter([1]) => .map(|x: i32| x) };
}

fn timing_without_metering() {
    let _ = pipeline! { metrics = off; timing = on; futures::stream::iter([1]) => .map(|x: i32| x) };
}

fn main() {
    unknown_option();
    option_set_twice();
    not_on_or_off();
    timing_without_metering();
}
