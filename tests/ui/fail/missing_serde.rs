use rapyer::prelude::*;

#[derive(AtomicModel)]
struct User {
    #[rapyer(key)]
    id: String,
}

fn main() {}
