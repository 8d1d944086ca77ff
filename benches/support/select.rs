//! Which parts of a benchmark to run: `cargo bench --bench NAME -- a b`
//! runs only the parts named `a` and `b`, every part when none is named
//! (flags such as cargo's own `--bench` are not names).

/// Whether the part `name` was asked for.
pub fn wanted() -> impl Fn(&str) -> bool {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    move |name: &str| only.is_empty() || only.iter().any(|o| o == name)
}
