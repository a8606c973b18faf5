"""rapyer for Python's atomic integer increment, measured for `cargo xtask bench python`.

Usage: python3 incr.py REDIS_URL IN_FLIGHT[,IN_FLIGHT...] [--seconds S] [--warmup S]

For each in-flight count: seeds 1,000 models, runs that many concurrent loops on one
asyncio event loop, each loop incrementing the `age` of its own models in turn (a warm-up,
then a fixed measured time), checks the ages on the server, deletes the models. Prints one JSON line per in-flight count on stdout:

    {"in_flight": 20, "ops_per_s": 4321.0, "ops": 8642, "seconds": 2.0, "document": "{...}"}

("document" is model 0's JSON as stored before the increments, to compare with the Rust
side's.)

The call measured is `user.age = await user.age.aincrease(1)`, the fair equivalent of rapyer
(Rust)'s `user.age().incr(&db, 1)`:
  * atomic on the server: `RedisInt.aincrease` (rapyer/types/integer.py) sends one
    `JSON.NUMINCRBY key $.age 1` and returns the new value the server replied with; with no
    TTL configured there is no other command (no TTL refresh is installed);
  * the local value updated: Python ints are immutable, so `aincrease` cannot change the
    field in place; assigning its result back is how the model's field gets the server's
    value (outside a pipeline that assignment only validates, it sends nothing).
The model (no indexed field, so no RediSearch work) stores the same JSON document as the
Rust side's: id, name, email, age, score, tags and prefs (a bool is left out: rapyer for
Python stores a bool pickled and base64-encoded by default, which would make its document
larger than the Rust side's).

Each in-flight count gets its own client made the way `init_rapyer(url)` makes one
(`redis.asyncio.from_url(url, decode_responses=True, max_connections=20)`), but with
max(20, in_flight) connections: redis-py sends one command per connection at a time and
raises "Too many connections" past the pool's size, so 64 in flight needs 64.
"""

import argparse
import asyncio
import json
import sys
import time

if sys.version_info < (3, 10):
    sys.exit("rapyer for Python needs Python 3.10 or newer")

import redis.asyncio as redis_async
from rapyer import AtomicRedisModel, init_rapyer, teardown_rapyer
from rapyer.fields import Key

MODELS = 1_000


class IncrUser(AtomicRedisModel):
    id: Key[int]
    name: str
    email: str
    age: int
    score: float
    tags: list[str]
    prefs: dict[str, str]


def user(i: int) -> IncrUser:
    # The same values as the Rust side's `user(i)`.
    return IncrUser(
        id=i,
        name=f"user number {i}",
        email=f"user{i}@example.com",
        age=30 + i % 40,
        score=i * 1.5,
        tags=["alpha", "beta", "gamma"],
        prefs={"theme": "dark", "lang": "en"},
    )


async def check(models, done: int) -> None:
    """Fails unless every increment reached the server and each local value mirrors it."""
    keys = [m.key for m in models]
    # redis-py decodes each reply: a list of the values at the path, None for a missing key.
    replies = await IncrUser.Meta.redis.json().mget(keys, "$.age")
    server = [r[0] if r else None for r in replies]
    local = [int(m.age) for m in models]
    seeded = sum(user(i).age for i in range(len(models)))
    if server != local or sum(server) - seeded != done:
        sys.exit(
            f"rapyer for Python: the server's ages do not add up to the {done} increments "
            "made, or differ from the local models' ages"
        )


async def measure(models, in_flight: int, warmup: float, seconds: float) -> dict:
    """Runs `in_flight` loops; counts the increments done in the measured window."""
    done = 0
    stop = False

    async def run(w: int) -> None:
        nonlocal done
        # Loop w works on models w, w + in_flight, w + 2 * in_flight, ...: no two loops
        # share a local model object.
        mine = models[w::in_flight]
        n = 0
        while not stop:
            u = mine[n % len(mine)]
            u.age = await u.age.aincrease(1)
            n += 1
            done += 1

    loops = [asyncio.create_task(run(w)) for w in range(in_flight)]
    await asyncio.sleep(warmup)
    start_done, start = done, time.perf_counter()
    await asyncio.sleep(seconds)
    end_done, end = done, time.perf_counter()
    stop = True
    await asyncio.gather(*loops)
    await check(models, done)
    ops = end_done - start_done
    return {
        "in_flight": in_flight,
        "ops_per_s": ops / (end - start),
        "ops": ops,
        "seconds": end - start,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the Redis server, e.g. redis://127.0.0.1:6379/")
    parser.add_argument("in_flight", help="comma-separated in-flight counts, e.g. 1,8,20,64")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured time per count")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up time per count")
    args = parser.parse_args()
    counts = [int(c) for c in args.in_flight.split(",") if c.strip()]
    if not counts or min(counts) < 1 or max(counts) > MODELS:
        parser.error(f"in-flight counts must be between 1 and {MODELS}")

    for in_flight in counts:
        client = redis_async.from_url(
            args.url, decode_responses=True, max_connections=max(20, in_flight)
        )
        await init_rapyer(client)
        models = [user(i) for i in range(MODELS)]
        await IncrUser.ainsert(*models)
        # A client of its own: the one rapyer uses has redis-py's JSON reply parsing on.
        plain = redis_async.from_url(args.url, decode_responses=True)
        document = await plain.execute_command("JSON.GET", models[0].key)
        await plain.aclose()
        result = await measure(models, in_flight, args.warmup, args.seconds)
        result["document"] = document
        print(json.dumps(result), flush=True)
        await client.delete(*[m.key for m in models])
        await teardown_rapyer()


if __name__ == "__main__":
    asyncio.run(main())
