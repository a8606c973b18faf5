use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    age: i64,
    #[rapyer(index)]
    name: String,
}

fn main() {
    let f = User::fields();
    // A number compared with text, text compared with a number.
    let _ = f.age.eq("forty");
    let _ = f.name.eq(40);
}
