//! Typed queries over RediSearch: index a model, find by exact tags, ranges, nested fields
//! and full text, sort, page, count and delete.
//!
//! Run it with `cargo xtask demo query` (which provides a Redis), or against your own
//! Redis 8 / redis-stack with `REDIS_URL=redis://127.0.0.1:6379 cargo run --example query`.

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    #[rapyer(index)]
    city: String,
    zip: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Person")]
struct Person {
    #[rapyer(key)]
    id: Id,
    #[rapyer(index)]
    name: String,
    #[rapyer(index(sortable))]
    age: i64,
    #[rapyer(index(text))]
    bio: String,
    #[rapyer(index)]
    tags: Vec<String>,
    #[rapyer(index)]
    address: Address,
}

fn person(name: &str, age: i64, city: &str, bio: &str, tags: &[&str]) -> Person {
    Person {
        id: Id::default(),
        name: name.into(),
        age,
        bio: bio.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        address: Address {
            city: city.into(),
            zip: 1000 + age,
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = Db::connect(&url).await?.with_namespace("query-demo/")?;
    println!("connected to {url}, every key under the namespace `query-demo/`\n");

    println!("== init creates the index (again only when the schema changes)");
    db.init::<Person>().await?;
    let people = vec![
        person(
            "bob",
            34,
            "Paris",
            "writes Rust and plays chess",
            &["admin", "dev"],
        ),
        person("bob smith", 51, "New York", "sells boats", &["sales"]),
        person(
            "a-b \"c\" {d}",
            19,
            "Paris",
            "loves quoting things",
            &["dev"],
        ),
        person("ann", 27, "São Paulo", "Rust, Go and tea", &["dev", "ops"]),
    ];
    Person::insert_many(&db, &people).await?;
    let f = Person::fields();

    println!("\n== Exact tags: `bob` is not `bob smith`, hostile values just work");
    for name in ["bob", "a-b \"c\" {d}"] {
        let found = Person::find(&db, f.name.eq(name)).all().await?;
        println!("name = {name:?}: {:?}", names(&found));
    }

    println!("\n== Ranges, nested fields, lists, full text, combined with & | !");
    let q = f.age.between(20, 40) & f.address.city.eq("Paris");
    println!(
        "{} -> {:?}",
        q.to_query()?,
        names(&Person::find(&db, q).all().await?)
    );
    let q = f.tags.contains("dev") & !f.bio.contains("quoting");
    println!(
        "{} -> {:?}",
        q.to_query()?,
        names(&Person::find(&db, q).all().await?)
    );
    let q = f.bio.matches("rust") | f.age.gt(50);
    println!(
        "{} -> {:?}",
        q.to_query()?,
        names(&Person::find(&db, q).all().await?)
    );

    println!("\n== Sorted, paged, counted");
    let oldest_first = Person::find(&db, f.tags.any_of(["dev", "sales"]))
        .sort_by(&f.age, Order::Desc)
        .limit(0, 3)
        .all()
        .await?;
    println!("oldest three: {:?}", names(&oldest_first));
    let devs = Person::find(&db, f.tags.contains("dev")).count().await?;
    println!("{devs} developers");
    let youngest = Person::find(&db, f.age.ge(0))
        .sort_by(&f.age, Order::Asc)
        .first()
        .await?;
    println!("youngest: {:?}", youngest.map(|p| p.name));

    println!("\n== Delete what matches");
    let deleted = Person::find(&db, f.address.city.eq("Paris"))
        .delete()
        .await?;
    println!(
        "deleted {deleted} Parisians; {} people left",
        Person::all(&db).await?.len()
    );
    Person::find(&db, f.age.ge(0)).delete().await?;
    Ok(())
}

fn names(people: &[Person]) -> Vec<&str> {
    let mut names: Vec<&str> = people.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    names
}
