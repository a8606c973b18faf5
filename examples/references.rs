//! References between models: `Ref<M>` fields stored as the target's id, loaded one by one or
//! level by level, found backwards through the index, and what deleting a target does to
//! the models referencing it (`on_delete`).
//!
//! Run it with `cargo xtask demo references` (which provides a Redis), or against your own
//! Redis 8 / redis-stack with `REDIS_URL=redis://127.0.0.1:6379 cargo run --example references`.

use std::time::Duration;

use rapyer::prelude::*;
use rapyer::{Ref, Refs};
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Publisher {
    #[rapyer(key)]
    id: String,
    name: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Author {
    #[rapyer(key)]
    id: String,
    name: String,
    publisher: Ref<Publisher>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Book {
    #[rapyer(key)]
    id: String,
    title: String,
    /// Deleting the author deletes their books.
    #[rapyer(index, on_delete = "cascade")]
    author: Ref<Author>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Reader {
    #[rapyer(key)]
    id: String,
    /// Deleting the author clears the reference.
    #[rapyer(index, on_delete = "set_null")]
    favourite: Option<Ref<Author>>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = Db::connect(&url)
        .await?
        .with_namespace("references-demo/")?;
    println!("connected to {url}, every key under the namespace `references-demo/`\n");
    // The indexes find the referrers; init also registers their on_delete policies.
    db.init::<Book>().await?;
    db.init::<Reader>().await?;

    let acme = Publisher {
        id: "acme".into(),
        name: "Acme Press".into(),
    };
    acme.save(&db).await?;
    let ann = Author {
        id: "ann".into(),
        name: "Ann".into(),
        publisher: Ref::to(&acme),
    };
    ann.save(&db).await?;
    let books: Vec<Book> = (1..=3)
        .map(|i| Book {
            id: format!("b{i}"),
            title: format!("Volume {i}"),
            author: Ref::to(&ann),
        })
        .collect();
    Book::insert_many(&db, &books).await?;
    Reader {
        id: "r1".into(),
        favourite: Some(Ref::to(&ann)),
    }
    .save(&db)
    .await?;

    println!("== One by one: a reference is the id; get loads the target");
    let author = books[0].author.get(&db).await?;
    println!(
        "{} is by {} ({:?} stored)",
        books[0].title,
        author.name,
        books[0].author.id()
    );
    let missing = Ref::<Author>::new("nobody");
    println!(
        "a dangling reference: get -> {:?}",
        missing.get(&db).await.err()
    );
    println!(
        "                  get_opt -> {:?}\n",
        missing.get_opt(&db).await?
    );

    println!("== Level by level: one round trip per level, each key read once");
    let refs = Refs::load(&db, &books, 2).await?;
    for book in &books {
        let author = refs.get(&book.author)?;
        let publisher = refs.get(&author.publisher)?;
        println!(
            "{} by {}, published by {}",
            book.title, author.name, publisher.name
        );
    }
    println!("{} documents in {} levels\n", refs.len(), refs.levels());

    println!("== Backwards: the books of an author, through the index");
    let f = Book::fields();
    let by_ann = Book::find(&db, f.author.eq(&ann)).count().await?;
    println!("ann wrote {by_ann} books\n");

    println!("== An expiry along references (the book, its author, the publisher)");
    let set = rapyer::set_ttl_cascade(&db, &books[0], Duration::from_secs(3600), 2).await?;
    println!("{set} documents now expire in an hour\n");

    println!("== Deleting the author: the books go too, the reader's favourite is cleared");
    Author::delete_by_id(&db, "ann").await?;
    println!(
        "books left: {}",
        Book::find(&db, f.author.eq(&ann)).count().await?
    );
    println!("reader r1: {:?}", Reader::get(&db, "r1").await?);

    Reader::delete_by_id(&db, "r1").await?;
    Publisher::delete_by_id(&db, "acme").await?;
    Ok(())
}
