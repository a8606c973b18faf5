//! [`RateLimiter`]: GCRA (the generic cell rate algorithm) with the semantics of redis-cell's
//! `CL.THROTTLE`, one library script per check, on the server's clock.

use std::time::Duration;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::structure_key;
use crate::script::failure::document_error;
use crate::script::library;

/// The largest tolerance or increment, in microseconds (2^51, 71 years): with the clock
/// below 2^52 (until 2112), every sum the script forms stays below 2^53, where a Lua double
/// is still an exact integer.
pub const MAX_SPAN_MICROS: u64 = 1 << 51;

/// The longest limiter name accepted.
const MAX_NAME_LEN: usize = 128;

/// A rate: `count` requests per `period`, with bursts of up to `max_burst` requests beyond
/// the steady rate (`CL.THROTTLE key max_burst count period`); build it with [`Limit::per`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limit {
    /// Requests allowed per `period` in the steady state.
    pub count: u64,
    /// The period `count` is counted over.
    pub period: Duration,
    /// How many requests beyond one may come at once: a fresh subject may make
    /// `max_burst + 1` requests in a row (the limit).
    pub max_burst: u64,
}

impl Limit {
    /// `count` requests per `period`, the whole `count` allowed at once (`max_burst` is
    /// `count - 1`).
    pub fn per(count: u64, period: Duration) -> Limit {
        Limit {
            count,
            period,
            max_burst: count.saturating_sub(1),
        }
    }

    /// The same rate, with bursts of up to `max_burst + 1` requests at once.
    pub fn max_burst(self, max_burst: u64) -> Limit {
        Limit { max_burst, ..self }
    }
}

/// The answer to one check, as `CL.THROTTLE` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request is allowed (and was counted).
    pub allowed: bool,
    /// The most requests a fresh subject may make at once: `max_burst + 1`.
    pub limit: u64,
    /// How many more single requests would be allowed right now.
    pub remaining: u64,
    /// For a refused request, when the same request would be allowed; `None` when it was
    /// allowed, or when it never can be (a quantity above the limit).
    pub retry_after: Option<Duration>,
    /// When the subject is back to a full allowance (and its key expires).
    pub reset_after: Duration,
}

/// A rate limiter: one key per limited subject, `{namespace}_rapyer:limit:{name}:{subject}`,
/// holding the subject's theoretical arrival time (GCRA), which expires as soon as the
/// subject is back to a full allowance, so idle subjects leave nothing behind.
///
/// Each [`check`](RateLimiter::check) is one library script: it reads the server's clock
/// (`TIME`), decides, and writes the new state, so concurrent callers on any number of
/// clients never get more than the limit allows, and the clocks of the clients play no part.
/// On a cluster each subject's key lives in its own slot; a check touches only that key.
///
/// The arithmetic is exact, in whole microseconds: the emission interval `period / count`
/// is rounded *up* to a microsecond (so the limiter never allows more than asked; redis-cell
/// rounds down to a nanosecond), and every value stays below 2^53, where Lua's doubles hold
/// integers exactly: the tolerance `interval × (max_burst + 1)` and the increment `interval ×
/// quantity` may each be at most [`MAX_SPAN_MICROS`] (71 years).
///
/// ```no_run
/// # async fn demo(db: &rapyer::Db) -> rapyer::Result<()> {
/// use std::time::Duration;
/// use rapyer::{Limit, RateLimiter};
///
/// let api = RateLimiter::new(db, "api", Limit::per(100, Duration::from_secs(60)))?;
/// let decision = api.check("user:42").await?;
/// if !decision.allowed {
///     println!("try again in {:?}", decision.retry_after);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimiter {
    db: Db,
    /// `{namespace}_rapyer:limit:{name}:`, the start of every subject's key.
    space: String,
    limit: Limit,
    /// The emission interval, in microseconds.
    interval: u64,
    /// The tolerance `interval × (max_burst + 1)`, in microseconds.
    tau: u64,
}

impl RateLimiter {
    /// The limiter `name` in `db`'s namespace, allowing `limit`. Nothing is sent.
    ///
    /// The name is 1 to 128 characters of `A-Z a-z 0-9 _ - .` (it is followed by the subject
    /// in each key, so it holds no `:`). A zero count or period, a rate finer than one
    /// request per microsecond, or a tolerance beyond [`MAX_SPAN_MICROS`] is
    /// [`Error::InvalidOp`].
    pub fn new(db: &Db, name: &str, limit: Limit) -> Result<RateLimiter> {
        let space = structure_key(db.namespace(), "limit", &format!("{name}:"));
        let invalid = |message: String| Error::InvalidOp {
            key: space.clone(),
            path: String::new(),
            message,
        };
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(invalid(format!(
                "a rate limiter's name is 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ - ., \
                 not {name:?}"
            )));
        }
        let period = limit.period.as_micros();
        if limit.count == 0 || period == 0 {
            return Err(invalid(format!(
                "a rate limiter allows at least one request per period of at least a \
                 microsecond, not {} per {:?}",
                limit.count, limit.period
            )));
        }
        let interval = period.div_ceil(u128::from(limit.count));
        if u128::from(limit.count) > period {
            return Err(invalid(format!(
                "{} requests per {:?} is finer than one per microsecond, the limiter's unit",
                limit.count, limit.period
            )));
        }
        let tau = interval * (u128::from(limit.max_burst) + 1);
        if tau > u128::from(MAX_SPAN_MICROS) {
            return Err(invalid(format!(
                "a burst of {} at one request per {interval} µs spans {tau} µs, more than the \
                 {MAX_SPAN_MICROS} µs the exact arithmetic allows",
                u128::from(limit.max_burst) + 1
            )));
        }
        // Both fit: interval ≤ tau ≤ MAX_SPAN_MICROS.
        Ok(RateLimiter {
            db: db.clone(),
            space,
            limit,
            interval: interval as u64,
            tau: tau as u64,
        })
    }

    /// The rate this limiter allows.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// The full key of `subject` (any text).
    pub fn key(&self, subject: &str) -> String {
        let mut key = String::with_capacity(self.space.len() + subject.len());
        key.push_str(&self.space);
        key.push_str(subject);
        key
    }

    /// Checks one request of `subject` and counts it if allowed.
    pub async fn check(&self, subject: &str) -> Result<Decision> {
        self.check_n(subject, 1).await
    }

    /// Checks a request that weighs `quantity` (`CL.THROTTLE`'s quantity): allowed only
    /// when all of it fits, and then counted whole. A quantity of 0 only looks. A quantity
    /// above the limit is never allowed (`retry_after` is `None`); one whose increment
    /// passes [`MAX_SPAN_MICROS`] is [`Error::InvalidOp`].
    pub async fn check_n(&self, subject: &str, quantity: u64) -> Result<Decision> {
        self.run(subject, quantity, None).await
    }

    /// The check at the instant `now` (microseconds since the epoch) instead of the
    /// server's clock, through a separate script that no name reaches: for tests only.
    pub(crate) async fn check_at(
        &self,
        subject: &str,
        quantity: u64,
        now: u64,
    ) -> Result<Decision> {
        if now >= 1 << 52 {
            return Err(self.invalid(subject, format!("a test clock below 2^52, not {now}")));
        }
        self.run(subject, quantity, Some(now)).await
    }

    async fn run(&self, subject: &str, quantity: u64, now: Option<u64>) -> Result<Decision> {
        let key = self.key(subject);
        let increment = u128::from(self.interval) * u128::from(quantity);
        if increment > u128::from(MAX_SPAN_MICROS) {
            return Err(self.invalid(
                subject,
                format!(
                    "a quantity of {quantity} at one request per {} µs spans {increment} µs, \
                     more than the {MAX_SPAN_MICROS} µs the exact arithmetic allows",
                    self.interval
                ),
            ));
        }
        let mut args = vec![
            self.interval.to_string(),
            self.tau.to_string(),
            increment.to_string(),
            (self.limit.max_burst + 1).to_string(),
        ];
        let script = match now {
            None => &*library::RATE_LIMIT,
            Some(now) => {
                args.push(now.to_string());
                &*library::RATE_LIMIT_TEST_CLOCK
            }
        };
        let keys = [key];
        let (limited, limit, remaining, retry, reset): (i64, u64, u64, i64, i64) = self
            .db
            .run_lua(script, &keys, &args)
            .await
            .map_err(|e| document_error(e, &keys[0]))?;
        Ok(Decision {
            allowed: limited == 0,
            limit,
            remaining,
            retry_after: u64::try_from(retry).ok().map(Duration::from_micros),
            reset_after: Duration::from_micros(u64::try_from(reset).unwrap_or(0)),
        })
    }

    fn invalid(&self, subject: &str, message: String) -> Error {
        Error::InvalidOp {
            key: self.key(subject),
            path: String::new(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::script::library::{RATE_LIMIT, RATE_LIMIT_TEST_CLOCK, SERVER_CLOCK, all};

    #[test]
    fn only_the_unnamed_test_script_takes_a_time_from_its_arguments() {
        let production = RATE_LIMIT.body();
        let test = RATE_LIMIT_TEST_CLOCK.body();
        assert!(production.contains(SERVER_CLOCK));
        assert!(!production.contains("ARGV[5]"));
        assert!(!test.contains("'TIME'") && test.contains("local now = tonumber(ARGV[5])"));
        assert_eq!(
            test.replacen("local now = tonumber(ARGV[5])\n", SERVER_CLOCK, 1),
            production
        );
        let names: Vec<&str> = all().iter().map(|s| s.name()).collect();
        assert!(names.contains(&"rapyer.rate_limit"));
        assert!(!names.contains(&RATE_LIMIT_TEST_CLOCK.name()));
    }
}
