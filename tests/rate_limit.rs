//! `RateLimiter` against the real server: exact agreement with a reference GCRA written here
//! over random request sequences at controlled instants (the test-only clock), the edges of
//! the exact arithmetic (periods of decades, a limit of 10^9, a clock near 2^52), 32
//! concurrent callers never allowed more than GCRA permits, hostile subjects, keys of other
//! types, expiry, and a cluster.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rapyer::__private::v1::rate_limit_check_at;
use rapyer::{Decision, Error, Limit, MAX_SPAN_MICROS, RateLimiter};
use redis::aio::MultiplexedConnection;

mod common;
use common::Rng;

/// What a decision says: (allowed, limit, remaining, retry after µs, reset after µs).
type Answer = (bool, u64, u64, Option<u64>, u64);

fn answer(d: &Decision) -> Answer {
    (
        d.allowed,
        d.limit,
        d.remaining,
        d.retry_after.map(|r| r.as_micros() as u64),
        d.reset_after.as_micros() as u64,
    )
}

/// GCRA as redis-cell's `CL.THROTTLE` computes it, in whole microseconds, with the emission
/// interval rounded up; a subject's state is gone once its TAT has passed (the key expired).
struct Reference {
    interval: u64,
    tau: u64,
    limit: u64,
    tat: HashMap<String, u64>,
}

impl Reference {
    fn new(limit: Limit) -> Reference {
        let period = limit.period.as_micros() as u64;
        let interval = period.div_ceil(limit.count);
        Reference {
            interval,
            tau: interval * (limit.max_burst + 1),
            limit: limit.max_burst + 1,
            tat: HashMap::new(),
        }
    }

    fn check(&mut self, subject: &str, quantity: u64, now: u64) -> Answer {
        let tat = self.tat.get(subject).copied().unwrap_or(now).max(now);
        let increment = self.interval * quantity;
        let new_tat = tat + increment;
        let (allowed, retry, ttl);
        if new_tat > now + self.tau {
            allowed = false;
            retry = (increment <= self.tau).then(|| new_tat - self.tau - now);
            ttl = tat - now;
        } else {
            allowed = true;
            retry = None;
            ttl = new_tat - now;
            if ttl > 0 {
                self.tat.insert(subject.to_string(), new_tat);
            }
        }
        let remaining = self.tau.saturating_sub(ttl) / self.interval;
        (allowed, self.limit, remaining, retry, ttl)
    }
}

async fn server_micros(raw: &mut MultiplexedConnection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME")
        .query_async(raw)
        .await
        .expect("a reply of the expected shape");
    s * 1_000_000 + us
}

async fn get(raw: &mut MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(raw)
        .await
        .expect("a reply of the expected shape")
}

#[tokio::test]
async fn the_limiter_agrees_exactly_with_a_reference_gcra_over_random_sequences() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = server_micros(&mut raw).await;
    // How many answers were allowed, refused with a retry, refused for good.
    let mut seen = [0u32; 3];
    for round in 0..24 {
        // Emission intervals of a minute or more, with a remainder (the rounding up), so a
        // key never expires in real time during the round.
        let count = 1 + rng.below(20);
        let period =
            Duration::from_micros(count * (60_000_000 + rng.below(5_000_000)) + rng.below(count));
        let limit = Limit::per(count, period).max_burst(rng.below(12));
        let name = format!("random{round}");
        let limiter = RateLimiter::new(&db, &name, limit).expect("a reply of the expected shape");
        let mut reference = Reference::new(limit);
        let mut now = start;
        for step in 0..150 {
            now += match rng.below(5) {
                0 => 0,
                1 => rng.below(1_000),
                2 => rng.below(reference.interval),
                3 => rng.below(3 * reference.interval),
                _ => rng.below(reference.tau + reference.interval),
            };
            let subject = ["a", "b", "c"][rng.below(3) as usize];
            let quantity = match rng.below(6) {
                0 => 0,
                1 => reference.limit + rng.below(3),
                _ => 1 + rng.below(3),
            };
            let got = rate_limit_check_at(&limiter, subject, quantity, now)
                .await
                .expect("a reply of the expected shape");
            let want = reference.check(subject, quantity, now);
            seen[match want {
                (true, ..) => 0,
                (false, _, _, Some(_), _) => 1,
                _ => 2,
            }] += 1;
            assert_eq!(
                answer(&got),
                want,
                "round {round} step {step}: {limit:?} {subject} x{quantity} at {now}"
            );
            // The stored state is the reference's TAT, as exact decimal text.
            if let Some(tat) = reference.tat.get(subject).filter(|&&t| t > now) {
                assert_eq!(
                    get(&mut raw, &limiter.key(subject)).await,
                    Some(tat.to_string())
                );
            }
        }
    }
    assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
}

#[tokio::test]
async fn the_arithmetic_is_exact_at_its_edges() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let year = Duration::from_secs(365 * 24 * 3600);
    let near_top = (1u64 << 52) - 1;
    // A period of 70 years, one request, no burst: tau = 2.2e15 µs, just below 2^51.
    let decades = Limit::per(1, year * 70);
    let limiter = RateLimiter::new(&db, "decades", decades).expect("a reply of the expected shape");
    let tau = Reference::new(decades).tau;
    for now in [1_700_000_000_000_000, near_top - tau - 10] {
        let subject = format!("s{now}");
        let mut reference = Reference::new(decades);
        for (quantity, at) in [
            (1, now),
            (1, now),
            (1, now + 1),
            (0, now + 7),
            (1, now + reference.tau),
        ] {
            let got = rate_limit_check_at(&limiter, &subject, quantity, at)
                .await
                .expect("a reply of the expected shape");
            assert_eq!(
                answer(&got),
                reference.check(&subject, quantity, at),
                "{at}"
            );
        }
        // The last TAT is about 2^52 + 2^51 for the second start: still exact.
        let tat = reference.tat[&subject];
        assert_eq!(
            get(&mut raw, &limiter.key(&subject)).await,
            Some(tat.to_string())
        );
    }
    // 71.4 years is past 2^51 µs: refused before sending.
    assert!(matches!(
        RateLimiter::new(
            &db,
            "too-long",
            Limit::per(1, Duration::from_micros(MAX_SPAN_MICROS + 1))
        ),
        Err(Error::InvalidOp { .. })
    ));
    assert!(
        RateLimiter::new(
            &db,
            "just",
            Limit::per(1, Duration::from_micros(MAX_SPAN_MICROS))
        )
        .is_ok()
    );

    // A limit of 10^9: one request per microsecond, all of them at once.
    let billion = Limit::per(1_000_000_000, Duration::from_secs(1_000));
    let limiter = RateLimiter::new(&db, "billion", billion).expect("a reply of the expected shape");
    let mut reference = Reference::new(billion);
    let now = 1_800_000_000_000_000;
    for (quantity, at) in [
        (999_999_999, now),
        (1, now),
        (1, now),
        (2, now + 1),
        (1, now + 1),
        (1_000_000_000, now + 2_000_000_000),
        (1_000_000_001, now + 4_000_000_000),
    ] {
        let got = rate_limit_check_at(&limiter, "x", quantity, at)
            .await
            .expect("a reply of the expected shape");
        assert_eq!(
            answer(&got),
            reference.check("x", quantity, at),
            "{quantity} at {at}"
        );
    }
    // The refused quantity above the limit can never pass.
    let never = rate_limit_check_at(&limiter, "y", 1_000_000_001, now)
        .await
        .expect("a reply of the expected shape");
    assert!(!never.allowed && never.retry_after.is_none());
    // Finer than a request per microsecond, or a burst past 2^51 µs: refused.
    for limit in [
        Limit::per(1_000_001, Duration::from_secs(1)),
        Limit::per(0, Duration::from_secs(1)),
        Limit::per(1, Duration::ZERO),
        Limit::per(1, year).max_burst(100),
        Limit::per(1, Duration::from_secs(1)).max_burst(u64::MAX),
    ] {
        assert!(
            matches!(
                RateLimiter::new(&db, "bad", limit),
                Err(Error::InvalidOp { .. })
            ),
            "{limit:?}"
        );
    }
    let limiter =
        RateLimiter::new(&db, "wide", Limit::per(1, year)).expect("a reply of the expected shape");
    assert!(matches!(
        limiter.check_n("q", 1_000).await,
        Err(Error::InvalidOp { .. })
    ));
}

#[tokio::test]
async fn thirty_two_concurrent_callers_are_never_allowed_more_than_gcra_permits() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let limit = Limit::per(20, Duration::from_millis(200)).max_burst(9);
    let limiter =
        Arc::new(RateLimiter::new(&db, "burst", limit).expect("a reply of the expected shape"));
    let interval = limit.period.as_micros() as u64 / limit.count;
    let allowed = Arc::new(AtomicU64::new(0));
    let before = server_micros(&mut raw).await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let limiter = limiter.clone();
        let allowed = allowed.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                if limiter
                    .check("shared")
                    .await
                    .expect("a reply of the expected shape")
                    .allowed
                {
                    allowed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a reply of the expected shape");
    }
    let after = server_micros(&mut raw).await;
    let allowed = allowed.load(Ordering::Relaxed);
    // GCRA's bound over the window the calls ran in: the burst, then one per interval.
    let bound = (limit.max_burst + 1) + (after - before) / interval + 1;
    assert!(
        allowed <= bound,
        "{allowed} allowed, GCRA permits at most {bound}"
    );
    // The first burst is always allowed, however the calls interleave.
    assert!(allowed > limit.max_burst, "{allowed}");
}

#[tokio::test]
async fn hostile_subjects_each_get_one_key_that_expires_when_idle() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let limiter = RateLimiter::new(&db, "api.v1_x-y", Limit::per(2, Duration::from_secs(60)))
        .expect("a reply of the expected shape");
    assert_eq!(
        limiter.key("u"),
        format!("{}_rapyer:limit:api.v1_x-y:u", db.namespace())
    );
    let subjects = [
        String::new(),
        ":".into(),
        "a:b".into(),
        "{tag}".into(),
        "*".into(),
        "'; redis.call('FLUSHALL') --".into(),
        "\n".into(),
        "🎉".into(),
        "x".repeat(1 << 20),
    ];
    let mut keys = HashSet::new();
    for subject in &subjects {
        let first = limiter
            .check(subject)
            .await
            .expect("a reply of the expected shape");
        assert!(
            first.allowed && first.remaining == 1 && first.limit == 2,
            "{first:?}"
        );
        let key = limiter.key(subject);
        assert!(keys.insert(key.clone()));
        let ttl = common::pttl(&mut raw, &key).await;
        assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
        let tat: u64 = get(&mut raw, &key)
            .await
            .expect("a reply of the expected shape")
            .parse()
            .expect("a reply of the expected shape");
        assert!(tat > 1_000_000_000_000_000);
    }
    for subject in &subjects {
        let second = limiter
            .check(subject)
            .await
            .expect("a reply of the expected shape");
        assert!(second.allowed && second.remaining == 0, "{second:?}");
        let third = limiter
            .check(subject)
            .await
            .expect("a reply of the expected shape");
        assert!(!third.allowed, "{third:?}");
        let retry = third.retry_after.expect("a reply of the expected shape");
        assert!(
            retry > Duration::ZERO && retry <= Duration::from_secs(30),
            "{retry:?}"
        );
    }
    // Limiter names are one segment, so no (name, subject) pair reads as another.
    for name in ["a:b", "", "a b", "{x}", &"n".repeat(129)] {
        assert!(matches!(
            RateLimiter::new(&db, name, Limit::per(1, Duration::from_secs(1))),
            Err(Error::InvalidOp { .. })
        ));
    }
    // An idle subject leaves nothing behind.
    let short = RateLimiter::new(&db, "short", Limit::per(1, Duration::from_millis(30)))
        .expect("a reply of the expected shape");
    short
        .check("idle")
        .await
        .expect("a reply of the expected shape");
    let key = short.key("idle");
    let mut gone = false;
    for _ in 0..200 {
        if get(&mut raw, &key).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "{key} never expired");
}

#[tokio::test]
async fn a_key_of_another_kind_is_a_type_mismatch_and_stays_untouched() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let limiter = RateLimiter::new(&db, "typed", Limit::per(5, Duration::from_secs(1)))
        .expect("a reply of the expected shape");
    let list = limiter.key("list");
    let _: () = redis::cmd("RPUSH")
        .arg(&list)
        .arg("x")
        .query_async(&mut raw)
        .await
        .expect("a reply of the expected shape");
    assert!(matches!(
        limiter.check("list").await,
        Err(Error::TypeMismatch { key, found, .. }) if key == list && found == "list"
    ));
    let junk = limiter.key("junk");
    for text in ["not a number", "1.5", "-3", "99999999999999999999"] {
        let _: () = redis::cmd("SET")
            .arg(&junk)
            .arg(text)
            .query_async(&mut raw)
            .await
            .expect("a reply of the expected shape");
        assert!(
            matches!(limiter.check("junk").await, Err(Error::TypeMismatch { .. })),
            "{text}"
        );
        assert_eq!(get(&mut raw, &junk).await.as_deref(), Some(text));
    }
    let len: i64 = redis::cmd("LLEN")
        .arg(&list)
        .query_async(&mut raw)
        .await
        .expect("a reply of the expected shape");
    assert_eq!(len, 1);
}

#[tokio::test]
async fn on_a_cluster_every_subject_is_limited_in_its_own_slot() {
    let db = common::cluster_db().await;
    let limiter = RateLimiter::new(&db, "edge", Limit::per(3, Duration::from_secs(60)))
        .expect("a reply of the expected shape");
    let subjects: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let slots: HashSet<u16> = subjects
        .iter()
        .map(|s| common::cluster_slot(&limiter.key(s)))
        .collect();
    assert!(slots.len() > 10);
    for subject in &subjects {
        for n in 0..4 {
            let d = limiter
                .check(subject)
                .await
                .expect("a reply of the expected shape");
            assert_eq!(d.allowed, n < 3, "{subject} #{n}: {d:?}");
        }
    }
}
