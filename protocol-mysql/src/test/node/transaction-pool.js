// npm mysql2 through a connguard transaction-mode MySQL listener with a small pool: WORKERS long-lived client
// connections at once, each ROUNDS rounds of a plain query, server-side prepared execute() (prepared once per
// client connection by mysql2, re-executed on whichever server connection serves the round: connguard
// prepares it there first), a committed and a rolled-back transaction, and a session variable of its own
// (time_zone) that must follow it from one server connection to another. Connection settings come from
// MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD and MYSQL_DATABASE; the table (argv[2]) exists and is
// empty. Prints one JSON line {done, threads, moved} and exits 0 when every result was right: done rounds,
// the server threads that served execute() calls, and how many workers' execute() ran on more than one.
'use strict';
const mysql = require('mysql2/promise');

const table = process.argv[2];
const workers = Number(process.env.WORKERS || 8);
const rounds = Number(process.env.ROUNDS || 15);
const settings = {
  host: process.env.MYSQL_HOST,
  port: Number(process.env.MYSQL_PORT),
  user: process.env.MYSQL_USER,
  password: process.env.MYSQL_PASSWORD,
  database: process.env.MYSQL_DATABASE,
};

function check(ok, what) {
  if (!ok) {
    throw new Error(what);
  }
}

async function worker(id, threads) {
  const zone = `+${String(id + 1).padStart(2, '0')}:00`;
  const seen = new Set();
  let done = 0;
  const c = await mysql.createConnection(settings);
  try {
    await c.query(`SET time_zone = '${zone}'`);
    for (let round = 0; round < rounds; round++) {
      const where = `worker ${id} round ${round}`;
      const [plain] = await c.query('SELECT ? + 1 AS n, @@session.time_zone AS zone', [id]);
      check(plain[0].n === id + 1 && plain[0].zone === zone, `${where}: plain query gave ${JSON.stringify(plain[0])}`);

      const [prepared] = await c.execute('SELECT ? AS w, ? AS r, CONNECTION_ID() AS thread', [id, round]);
      check(Number(prepared[0].w) === id && Number(prepared[0].r) === round,
        `${where}: execute() gave ${JSON.stringify(prepared[0])}`);
      seen.add(Number(prepared[0].thread));
      threads.add(Number(prepared[0].thread));

      await c.beginTransaction();
      await c.execute(`INSERT INTO ${table} (worker, round) VALUES (?, ?)`, [id, round]);
      const [inside] = await c.execute(`SELECT count(*) AS n FROM ${table} WHERE worker = ?`, [id]);
      check(Number(inside[0].n) === round + 1, `${where}: saw ${inside[0].n} rows in its transaction`);
      await c.commit();

      await c.beginTransaction();
      await c.execute(`INSERT INTO ${table} (worker, round) VALUES (?, ?)`, [id, -1]);
      await c.rollback();
      const [after] = await c.execute(
        `SELECT count(*) AS n, sum(round < 0) AS rolledBack, @@session.time_zone AS zone FROM ${table} WHERE worker = ?`,
        [id]);
      check(Number(after[0].n) === round + 1 && Number(after[0].rolledBack) === 0 && after[0].zone === zone,
        `${where}: after the rollback ${JSON.stringify(after[0])}`);
      done++;
    }
  } finally {
    await c.end();
  }
  return { done, moved: seen.size > 1 };
}

async function main() {
  const threads = new Set();
  const results = await Promise.all(Array.from({ length: workers }, (_, id) => worker(id, threads)));
  const done = results.reduce((sum, r) => sum + r.done, 0);
  const check2 = await mysql.createConnection(settings);
  const [rows] = await check2.query(`SELECT count(*) AS n, count(DISTINCT worker, round) AS d FROM ${table}`);
  await check2.end();
  check(Number(rows[0].n) === done && Number(rows[0].d) === done, `${JSON.stringify(rows[0])} rows committed, expected ${done}`);
  console.log(JSON.stringify({ done, threads: threads.size, moved: results.filter((r) => r.moved).length }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
