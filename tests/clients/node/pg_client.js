// node-postgres (pg) against Brikk: stream DDL, appends (literal and
// parameterised), parameterised queries and a named prepared statement
// (extended protocol), system columns, transactions (commit, rollback,
// isolation from a second connection), LISTEN via
// client.on('notification'), and a live COPY (SUBSCRIBE …) TO STDOUT read
// with pg-copy-streams and ended by closing its connection.
//
// Connects to BRIKK_HOST:BRIKK_PORT as user brikk, database brikk. Exits 0 on
// success, 1 with one FAIL line naming the step, the error and its SQLSTATE.
'use strict';

const { Client } = require('pg');
const { to: copyTo } = require('pg-copy-streams');

const NAME = 'node-pg';
const NOTIFY_TIMEOUT_MS = 10000;
const config = {
  host: process.env.BRIKK_HOST || '127.0.0.1',
  port: Number(process.env.BRIKK_PORT || 5487),
  user: 'brikk',
  database: 'brikk',
};
const s = `clients_node_pg_${process.pid}`;
const COLUMNS = "(task_id TEXT, kind TEXT, n BIGINT) WITH (partitions = 4, key = 'task_id')";

let current = null;

async function step(what, fn) {
  current = what;
  const t0 = Date.now();
  await fn();
  if (process.env.BRIKK_CLIENTS_VERBOSE) console.log(`  ok ${NAME}: ${what} (${(Date.now() - t0) / 1000}s)`);
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function keys(client, text, values) {
  const res = await client.query({ text, values, rowMode: 'array' });
  return res.rows.map((r) => r[0]);
}

function waitNotification(client, channel, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener('notification', onNote);
      reject(new Error(`no notification on channel ${channel} within ${timeoutMs / 1000}s`));
    }, timeoutMs);
    function onNote(msg) {
      if (msg.channel !== channel) return;
      clearTimeout(timer);
      client.removeListener('notification', onNote);
      resolve(msg);
    }
    client.on('notification', onNote);
  });
}

function checkStreamPayload(payload, key, row) {
  const doc = JSON.parse(payload);
  for (const f of ['partition', 'offset', 'timestamp', 'key', 'row']) {
    check(f in doc, `payload lacks ${f}: ${payload}`);
  }
  check(Number.isInteger(doc.partition) && doc.partition >= 0 && doc.partition < 4, `bad partition: ${payload}`);
  check(Number.isInteger(doc.offset) && doc.offset >= 0, `bad offset: ${payload}`);
  check(doc.key === key, `payload key ${doc.key} != ${key}: ${payload}`);
  const sameRow = Object.keys(row).length === Object.keys(doc.row || {}).length &&
    Object.entries(row).every(([k, v]) => doc.row[k] === v);
  check(sameRow, `payload row ${JSON.stringify(doc.row)} != ${JSON.stringify(row)}`);
}

async function main() {
  const conn = new Client(config);
  const other = new Client(config);
  // An 'error' event on an idle client would otherwise crash the process
  // without saying which step was running.
  for (const cl of [conn, other]) cl.on('error', (e) => fail(e));

  await step('connect', async () => {
    await conn.connect();
    await other.connect();
  });

  await step('create stream', async () => {
    await conn.query(`DROP STREAM IF EXISTS ${s}`);
    await conn.query(`CREATE STREAM ${s} ${COLUMNS}`);
  });

  await step('insert literal', async () => {
    const res = await conn.query(`INSERT INTO ${s} VALUES ('t1', 'build', 1), ('t2', 'test', 2)`);
    check(res.rowCount === 2, `rowCount ${res.rowCount} != 2`);
  });

  await step('insert with parameters', async () => {
    const res = await conn.query(`INSERT INTO ${s} VALUES ($1, $2, $3)`, ['t3', 'build', 3]);
    check(res.rowCount === 1, `rowCount ${res.rowCount} != 1`);
    // pg sends every parameter as text with an unspecified type; a bigint as a string.
    await conn.query(`INSERT INTO ${s} VALUES ($1, $2, $3)`, ['t4', 'big', '5000000000']);
    await conn.query(`INSERT INTO ${s} (task_id, kind, n) VALUES ($1, $2, $3)`, ['t5', 'deploy', 5]);
    await conn.query(`INSERT INTO ${s} VALUES ($1, $2, $3), ($4, $5, $6)`, ['t6', 'deploy', 6, 't7', 'test', 7]);
  });

  await step('query with parameters', async () => {
    const res = await conn.query(`SELECT task_id, kind, n FROM ${s} WHERE kind = $1 AND n >= $2 ORDER BY n`, ['build', 2]);
    // pg returns int8 as a string (it does not fit a JS number in general).
    check(eq(res.rows, [{ task_id: 't3', kind: 'build', n: '3' }]), `got ${JSON.stringify(res.rows)}`);
    const big = await keys(conn, `SELECT n FROM ${s} WHERE task_id = $1`, ['t4']);
    check(eq(big, ['5000000000']), `int8 round trip: got ${JSON.stringify(big)}`);
    const got = await keys(conn, `SELECT task_id FROM ${s} WHERE n > $1 ORDER BY task_id`, [4]);
    check(eq(got, ['t4', 't5', 't6', 't7']), `got ${JSON.stringify(got)}`);
  });

  await step('named prepared statement', async () => {
    const cases = [['deploy', ['t5', 't6']], ['test', ['t2', 't7']], ['none', []]];
    for (const [kind, want] of cases) {
      const res = await conn.query({
        name: 'by_kind',
        text: `SELECT task_id FROM ${s} WHERE kind = $1 ORDER BY n`,
        values: [kind],
        rowMode: 'array',
      });
      const got = res.rows.map((r) => r[0]);
      check(eq(got, want), `prepared, kind=${kind}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  });

  await step('system columns', async () => {
    const res = await conn.query(`SELECT _partition, _offset, _timestamp, _key, task_id FROM ${s} WHERE _key = $1`, ['t1']);
    check(res.rows.length === 1, `got ${JSON.stringify(res.rows)}`);
    const r = res.rows[0];
    check(Number(r._partition) >= 0 && Number(r._partition) < 4, `_partition ${r._partition}`);
    check(Number(r._offset) >= 0, `_offset ${r._offset}`);
    check(r._timestamp instanceof Date && !Number.isNaN(r._timestamp.getTime()), `_timestamp ${r._timestamp} is not a Date`);
    check(Math.abs(Date.now() - r._timestamp.getTime()) < 300000, `_timestamp ${r._timestamp.toISOString()} is not near now`);
    check(r._key === 't1' && r.task_id === 't1', `_key ${r._key}, task_id ${r.task_id}`);
  });

  await step('transaction commit', async () => {
    await conn.query('BEGIN');
    await conn.query(`INSERT INTO ${s} VALUES ($1, $2, $3)`, ['tx1', 'txn', 100]);
    await conn.query(`INSERT INTO ${s} VALUES ($1, $2, $3)`, ['tx2', 'txn', 101]);
    let seen = await keys(other, `SELECT task_id FROM ${s} WHERE kind = $1`, ['txn']);
    check(eq(seen, []), `uncommitted rows visible to another connection: ${JSON.stringify(seen)}`);
    await conn.query('COMMIT');
    seen = (await keys(other, `SELECT task_id FROM ${s} WHERE kind = $1`, ['txn'])).sort();
    check(eq(seen, ['tx1', 'tx2']), `after COMMIT another connection sees ${JSON.stringify(seen)}`);
  });

  await step('transaction rollback', async () => {
    await conn.query('BEGIN');
    await conn.query(`INSERT INTO ${s} VALUES ($1, $2, $3)`, ['rb1', 'rolledback', 200]);
    await conn.query('ROLLBACK');
    let seen = await keys(conn, `SELECT task_id FROM ${s} WHERE kind = $1`, ['rolledback']);
    check(eq(seen, []), `rolled-back row visible: ${JSON.stringify(seen)}`);
    seen = await keys(other, `SELECT task_id FROM ${s} WHERE kind = $1`, ['rolledback']);
    check(eq(seen, []), `rolled-back row visible to another connection: ${JSON.stringify(seen)}`);
  });

  await step('LISTEN stream', async () => {
    await conn.query(`LISTEN ${s}`);
    const wait = waitNotification(conn, s, NOTIFY_TIMEOUT_MS);
    await other.query(`INSERT INTO ${s} VALUES ($1, $2, $3)`, ['n1', 'notify', 42]);
    const msg = await wait;
    checkStreamPayload(msg.payload, 'n1', { task_id: 'n1', kind: 'notify', n: 42 });
    await conn.query(`UNLISTEN ${s}`);
  });

  await step('LISTEN/NOTIFY channel', async () => {
    const chan = `${s}_chan`;
    await conn.query(`LISTEN ${chan}`);
    const wait = waitNotification(conn, chan, NOTIFY_TIMEOUT_MS);
    await other.query(`NOTIFY ${chan}, 'hello from node-pg'`);
    const msg = await wait;
    check(msg.payload === 'hello from node-pg', `payload ${JSON.stringify(msg.payload)}`);
    await conn.query('UNLISTEN *');
  });

  await step('COPY (SUBSCRIBE) live rows', async () => {
    // Rows are objects keyed by column name: `count(*)` is called `count`.
    const total = Number((await other.query(`SELECT count(*) FROM ${s}`)).rows[0].count);
    check(Number.isInteger(total) && total > 0, `count ${total}`);
    const sub = new Client(config);
    sub.on('error', () => {}); // closed below, on purpose
    await sub.connect();
    // Every record from the beginning, then each one as it is committed:
    // one tab-separated line per record (_partition, _offset, _timestamp,
    // _key, then the columns). Lines may be split across chunks.
    const copy = sub.query(copyTo(`COPY (SUBSCRIBE ${s} FROM BEGINNING) TO STDOUT`));
    const rows = [];
    await new Promise((resolve, reject) => {
      let pending = '';
      copy.on('error', reject);
      copy.on('data', (chunk) => {
        pending += chunk.toString('utf8');
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
          rows.push(pending.slice(0, nl).split('\t'));
          pending = pending.slice(nl + 1);
          if (rows.length === total) other.query(`INSERT INTO ${s} VALUES ('live', 'copy', 7)`).catch(reject);
          if (rows[rows.length - 1][4] === 'live') resolve();
        }
      });
    });
    // Closing the connection ends the subscription on the server.
    await sub.end();
    check(rows.length === total + 1, `${rows.length} rows, want ${total + 1}`);
    const next = {};
    for (const [p, o] of rows) {
      check(Number(o) === (next[p] || 0), `partition ${p}: offset ${o} out of order`);
      next[p] = Number(o) + 1;
    }
    const deadline = Date.now() + NOTIFY_TIMEOUT_MS;
    for (;;) {
      const live = Number((await other.query(`SELECT count(*) AS n FROM brikk_subscriptions WHERE stream = $1`, [s])).rows[0].n);
      if (live === 0) break;
      check(Date.now() < deadline, 'the subscription outlived its connection');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  await step('drop stream', async () => {
    await conn.query(`DROP STREAM ${s}`);
    await conn.end();
    await other.end();
  });

  console.log(`PASS ${NAME}`);
}

function fail(e) {
  const code = e && e.code ? ` (SQLSTATE ${e.code})` : '';
  const msg = String((e && e.message) || e).replace(/\n/g, ' | ');
  if (process.env.BRIKK_CLIENTS_TRACEBACK && e && e.stack) console.error(e.stack);
  console.error(`FAIL ${NAME}: step '${current}': ${msg}${code}`);
  process.exit(1);
}

main().then(() => process.exit(0), fail);
