#!/usr/bin/env python3
"""procrastinate measured the way `crates/p38-cli/benches/queue.rs` measures p38.

    python3 procrastinate_bench.py [throughput|latency|all]

Uses BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) only to
drop and re-create the dedicated database `bench_procrastinate`, once per
measurement; everything else happens in that database. Times come from what
procrastinate recorded (`procrastinate_events.at`).

This module is also the procrastinate app the worker processes load
(`python3 -m procrastinate --app procrastinate_bench.app worker ...`).
"""

import asyncio
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import procrastinate
import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
BASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
if __name__ == "__main__":
    # Run through the importable module, so that the benchmark and the worker
    # processes use one app (and procrastinate does not warn about an app in
    # __main__).
    sys.path.insert(0, HERE)
    import procrastinate_bench

    asyncio.run(procrastinate_bench.main(sys.argv[1] if len(sys.argv) > 1 else "all"))
    sys.exit(0)

DB_NAME = "bench_procrastinate"
QUEUE = "bench"
CONCURRENCY = 16


def db_url() -> str:
    u = urlsplit(BASE_URL)
    return urlunsplit((u.scheme, u.netloc, "/" + DB_NAME, u.query, u.fragment))


# Pool: procrastinate passes these to psycopg_pool.AsyncConnectionPool. The
# psycopg_pool default (4 connections) would cap a worker running 16 jobs at
# once, so each process gets up to 20 (16 job slots + listener + side tasks).
app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ.get("PROCRASTINATE_BENCH_URL", db_url()),
        min_size=4,
        max_size=20,
    )
)


@app.task(name="noop", queue=QUEUE)
async def noop() -> None:
    return None


def recreate_database() -> None:
    with psycopg.connect(BASE_URL, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{DB_NAME}"')


async def fresh() -> None:
    recreate_database()
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


def spawn_worker(extra: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    env["PROCRASTINATE_BENCH_URL"] = db_url()
    return subprocess.Popen(
        [sys.executable, "-m", "procrastinate", "--app", "procrastinate_bench.app", "worker", "--queues", QUEUE, *extra],
        cwd=HERE,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(kids: list[subprocess.Popen]) -> None:
    for k in kids:
        k.send_signal(signal.SIGTERM)
    for k in kids:
        try:
            k.wait(timeout=10)
        except subprocess.TimeoutExpired:
            k.kill()
            k.wait()


async def scalar(conn: psycopg.AsyncConnection, sql: str):
    cur = await conn.execute(sql)
    row = await cur.fetchone()
    return row[0]


async def wait_succeeded(conn: psycopg.AsyncConnection, n: int, start: float) -> None:
    while await scalar(conn, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'") < n:
        await asyncio.sleep(0.1)
        if time.monotonic() - start > 600:
            raise SystemExit("throughput run took too long")


def pct(v: list[float], p: float) -> float:
    v = sorted(v)
    return v[round((len(v) - 1) * p)]


async def throughput(workers: int, jobs: int) -> None:
    await fresh()
    # Bulk insert before any worker starts (batch_defer: one multi-row INSERT
    # per 500 jobs, like ours), then ANALYZE.
    async with app.open_async():
        for _ in range(jobs // 500):
            await noop.batch_defer_async(*({} for _ in range(500)))
    async with await psycopg.AsyncConnection.connect(db_url(), autocommit=True) as conn:
        await conn.execute("ANALYZE")
        start = time.monotonic()
        kids = [spawn_worker(["--name", f"b{i}", "--concurrency", str(CONCURRENCY)]) for i in range(workers)]
        try:
            await wait_succeeded(conn, jobs, start)
        finally:
            stop(kids)
        cur = await conn.execute(
            "SELECT (SELECT min(at) FROM procrastinate_events WHERE type = 'started'),"
            " (SELECT max(at) FROM procrastinate_events WHERE type = 'succeeded')"
        )
        first, last = await cur.fetchone()
    secs = (last - first).total_seconds()
    print(f"throughput: {workers} worker process(es), {jobs} no-op jobs in {secs:.2f} s = {jobs / secs:.0f} jobs/s", flush=True)


async def latency(samples: int) -> None:
    await fresh()
    # One idle worker with procrastinate's default settings (LISTEN/NOTIFY on).
    kid = spawn_worker(["--name", "lat"])
    try:
        await asyncio.sleep(2)
        async with app.open_async():
            for _ in range(samples):
                await noop.defer_async()
                await asyncio.sleep(0.02)
        async with await psycopg.AsyncConnection.connect(db_url(), autocommit=True) as conn:
            await wait_succeeded(conn, samples, time.monotonic())
            cur = await conn.execute(
                "SELECT extract(epoch FROM s.at - d.at) * 1000"
                " FROM procrastinate_events d JOIN procrastinate_events s ON s.job_id = d.job_id"
                " WHERE d.type = 'deferred' AND s.type = 'started'"
            )
            ms = [float(r[0]) for r in await cur.fetchall()]
    finally:
        stop([kid])
    print(
        f"enqueue-to-start latency (LISTEN/NOTIFY, idle worker, {samples} jobs, µs resolution of stored times): "
        f"p50 {pct(ms, 0.5):.0f} ms, p99 {pct(ms, 0.99):.0f} ms, max {pct(ms, 1.0):.0f} ms",
        flush=True,
    )


async def main(what: str) -> None:
    v = importlib.metadata.version
    print(f"procrastinate {v('procrastinate')}, psycopg {v('psycopg')}, worker concurrency {CONCURRENCY}", flush=True)
    if what in ("throughput", "all"):
        await throughput(1, 5000)
        await throughput(4, 5000)
    if what in ("latency", "all"):
        await latency(200)
    if what not in ("throughput", "latency", "all"):
        raise SystemExit(f"unknown benchmark {what!r}: throughput, latency, all")


