// pg-boss measured the way `crates/p38-cli/benches/queue.rs` measures p38.
//
//   node pgboss_bench.mjs [throughput|latency|all]
//
// Uses BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) only to drop and
// re-create the dedicated database `bench_pgboss`, once per measurement; everything else
// happens in that database (pg-boss schema `pgboss`). Times come from what pg-boss recorded
// (`pgboss.job.created_on`, `started_on`, `completed_on`).
//
// Worker settings (PGBOSS_MODE, default both for throughput):
//   batch        work(queue, { batchSize: 16, burstWhenBatchFull: true }): one polling loop per
//                process that fetches up to 16 jobs at once and keeps fetching without delay while
//                fetches come back full; 16 jobs in flight per process.
//   concurrency  work(queue, { localConcurrency: 16, pollingIntervalSeconds: 0.5 }): 16 polling
//                loops per process, one job each, waiting the (minimum) 0.5 s polling interval
//                between fetches; 16 jobs in flight per process.
// `node pgboss_bench.mjs worker MODE` is the worker process the benchmark spawns.

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { PgBoss } from 'pg-boss'

const BASE_URL = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const DB_NAME = 'bench_pgboss'
const QUEUE = 'bench'
const CONCURRENCY = 16
const POOL_MAX = 20 // pg-boss's default pool is 10; 16 loops at once would queue on it

function dbUrl () {
  const u = new URL(BASE_URL)
  u.pathname = '/' + DB_NAME
  return u.toString()
}

// useListenNotify: the LISTEN/NOTIFY wake-up (queue option `notify`), pg-boss's documented way to
// start jobs without waiting out the polling interval. In the `concurrency` mode it is off: with it
// on, a batchSize-1 loop that found a job waits notifyPollingIntervalSeconds (30 s) before fetching
// again, since burstWhenBatchFull is ignored at batchSize 1.
function bossOptions (notify) {
  return { connectionString: dbUrl(), max: POOL_MAX, useListenNotify: notify }
}

function workOptions (mode) {
  if (mode === 'batch') return { batchSize: CONCURRENCY, burstWhenBatchFull: true }
  if (mode === 'concurrency') return { localConcurrency: CONCURRENCY, pollingIntervalSeconds: 0.5 }
  throw new Error(`unknown mode ${mode}`)
}

async function worker (mode, notify) {
  const boss = new PgBoss(bossOptions(notify))
  boss.on('error', () => {})
  await boss.start()
  await boss.work(QUEUE, workOptions(mode), async (jobs) => {}) // no-op; returning completes them
  const stop = async () => {
    await boss.stop({ graceful: false, timeout: 1000 }).catch(() => {})
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

async function admin (url, sqls) {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    let r
    for (const s of sqls) r = await c.query(s)
    return r
  } finally {
    await c.end()
  }
}

async function fresh () {
  await admin(BASE_URL, [`DROP DATABASE IF EXISTS "${DB_NAME}" WITH (FORCE)`, `CREATE DATABASE "${DB_NAME}"`])
  const boss = new PgBoss({ ...bossOptions(false), supervise: false, schedule: false })
  boss.on('error', (e) => console.error(e))
  await boss.start() // creates the pgboss schema
  await boss.createQueue(QUEUE, { notify: true })
  return boss
}

function spawnWorker (mode, notify) {
  return spawn(process.execPath, [fileURLToPath(import.meta.url), 'worker', mode, notify ? 'notify' : 'poll'], {
    stdio: 'ignore'
  })
}

async function stopAll (kids) {
  await Promise.all(kids.map((k) => new Promise((resolve) => {
    if (k.exitCode !== null) return resolve()
    const t = setTimeout(() => k.kill('SIGKILL'), 10000)
    k.once('exit', () => { clearTimeout(t); resolve() })
    k.kill('SIGTERM')
  })))
}

async function waitCompleted (db, n, start) {
  for (;;) {
    const r = await db.query(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state = 'completed'`, [QUEUE])
    if (r.rows[0].n >= n) return
    await sleep(100)
    if (Date.now() - start > 600_000) throw new Error('throughput run took too long')
  }
}

function pct (v, p) {
  const s = [...v].sort((a, b) => a - b)
  return s[Math.round((s.length - 1) * p)]
}

async function throughput (workers, jobs, mode) {
  const boss = await fresh()
  // Bulk insert before any worker starts: insert() is one multi-row INSERT; 500 jobs per call.
  for (let i = 0; i < jobs / 500; i++) {
    await boss.insert(QUEUE, Array.from({ length: 500 }, () => ({ data: {} })))
  }
  await boss.stop({ graceful: false })
  const db = new pg.Client({ connectionString: dbUrl() })
  await db.connect()
  await db.query('ANALYZE')
  const notify = mode === 'batch'
  const start = Date.now()
  const kids = Array.from({ length: workers }, () => spawnWorker(mode, notify))
  try {
    await waitCompleted(db, jobs, start)
  } finally {
    await stopAll(kids)
  }
  const r = await db.query(
    `SELECT extract(epoch FROM max(completed_on) - min(started_on))::float8 AS secs FROM pgboss.job WHERE name = $1`, [QUEUE])
  await db.end()
  const secs = r.rows[0].secs
  const label = mode === 'batch'
    ? `batchSize ${CONCURRENCY} + burstWhenBatchFull`
    : `localConcurrency ${CONCURRENCY}, pollingIntervalSeconds 0.5`
  console.log(`throughput: ${workers} worker process(es), ${jobs} no-op jobs in ${secs.toFixed(2)} s = ${(jobs / secs).toFixed(0)} jobs/s [pg-boss ${label}]`)
}

async function latency (samples) {
  const boss = await fresh()
  const mode = 'batch'
  const kid = spawnWorker(mode, true)
  const db = new pg.Client({ connectionString: dbUrl() })
  await db.connect()
  try {
    await sleep(2000)
    for (let i = 0; i < samples; i++) {
      await boss.send(QUEUE, {})
      await sleep(20)
    }
    await waitCompleted(db, samples, Date.now())
  } finally {
    await stopAll([kid])
  }
  await boss.stop({ graceful: false })
  const r = await db.query(
    `SELECT extract(epoch FROM started_on - created_on)::float8 * 1000 AS ms FROM pgboss.job WHERE name = $1`, [QUEUE])
  await db.end()
  const ms = r.rows.map((x) => x.ms)
  console.log(`enqueue-to-start latency (LISTEN/NOTIFY, idle worker, ${samples} jobs, µs resolution of stored times): p50 ${pct(ms, 0.5).toFixed(0)} ms, p99 ${pct(ms, 0.99).toFixed(0)} ms, max ${pct(ms, 1).toFixed(0)} ms [pg-boss batchSize ${CONCURRENCY} + burstWhenBatchFull, useListenNotify, queue notify]`)
}

async function main () {
  const [what = 'all', arg1, arg2] = process.argv.slice(2)
  if (what === 'worker') return worker(arg1, arg2 === 'notify')
  const ver = (p) => JSON.parse(readFileSync(new URL(`./node_modules/${p}/package.json`, import.meta.url))).version
  console.log(`pg-boss ${ver('pg-boss')}, pg ${ver('pg')}, node ${process.version}, worker concurrency ${CONCURRENCY}`)
  const modes = process.env.PGBOSS_MODE ? [process.env.PGBOSS_MODE] : ['batch', 'concurrency']
  if (what === 'throughput' || what === 'all') {
    for (const mode of modes) {
      await throughput(1, 5000, mode)
      await throughput(4, 5000, mode)
    }
  }
  if (what === 'latency' || what === 'all') await latency(200)
  if (!['throughput', 'latency', 'all'].includes(what)) throw new Error(`unknown benchmark ${what}: throughput, latency, all`)
}

main().catch((e) => { console.error(e); process.exit(1) })
