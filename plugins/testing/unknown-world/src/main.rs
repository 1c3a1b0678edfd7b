//! A WASI command (it exports `wasi:cli/run`), which targets none of Baton's worlds.

fn main() {
    println!("hello from a command component");
}
