use rapyer::prelude::*;
use rapyer::Ref;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct Author {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
struct Book {
    #[rapyer(key)]
    id: String,
    // The referrers are found through the index.
    #[rapyer(on_delete = "cascade")]
    author: Ref<Author>,
    #[rapyer(index, on_delete = "delete")]
    editor: Ref<Author>,
}

// A nested model is not what a delete finds.
#[derive(AtomicModel, Serialize, Deserialize)]
struct Credit {
    #[rapyer(index, on_delete = "restrict")]
    author: Ref<Author>,
}

fn main() {}
