// npm mysql2 through a connguard session-mode MySQL listener with a password account: plain queries,
// prepared execute() statements (server-side, reused on each pooled connection), transactions that
// commit and roll back, and a fresh connection per round so that server connections are reused between
// clients. Connection settings come from MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD and
// MYSQL_DATABASE; the table (argv[2]) exists and is empty. Prints "ok <n>" and exits 0 on success.
'use strict';
const mysql = require('mysql2/promise');

const table = process.argv[2];
const workers = 6;
const rounds = 10;
const settings = {
  host: process.env.MYSQL_HOST,
  port: Number(process.env.MYSQL_PORT),
  user: process.env.MYSQL_USER,
  password: process.env.MYSQL_PASSWORD,
  database: process.env.MYSQL_DATABASE,
};

async function worker(id) {
  let done = 0;
  for (let round = 0; round < rounds; round++) {
    const c = await mysql.createConnection(settings);
    try {
      const [plain] = await c.query('SELECT ? + 1 AS n, @leftover AS leftover', [id]);
      if (plain[0].n !== id + 1 || plain[0].leftover !== null) {
        throw new Error(`worker ${id} round ${round}: plain query gave ${JSON.stringify(plain[0])}`);
      }
      await c.query('SET @leftover = 1'); // the reset between clients must drop it
      await c.beginTransaction();
      await c.execute(`INSERT INTO ${table} (worker, round) VALUES (?, ?)`, [id, round]);
      const [inside] = await c.execute(`SELECT count(*) AS n FROM ${table} WHERE worker = ?`, [id]);
      if (Number(inside[0].n) !== round + 1) {
        throw new Error(`worker ${id} round ${round}: saw ${inside[0].n} rows in its transaction`);
      }
      await c.commit();
      await c.beginTransaction();
      await c.execute(`INSERT INTO ${table} (worker, round) VALUES (?, ?)`, [id, -1]);
      await c.rollback();
      const [after] = await c.execute(`SELECT count(*) AS n, sum(round < 0) AS rolledBack FROM ${table} WHERE worker = ?`, [id]);
      if (Number(after[0].n) !== round + 1 || Number(after[0].rolledBack) !== 0) {
        throw new Error(`worker ${id} round ${round}: after the rollback ${JSON.stringify(after[0])}`);
      }
      done++;
    } finally {
      await c.end();
    }
  }
  return done;
}

async function main() {
  const counts = await Promise.all(Array.from({ length: workers }, (_, id) => worker(id)));
  const total = counts.reduce((a, b) => a + b, 0);
  const check = await mysql.createConnection(settings);
  const [rows] = await check.query(`SELECT count(*) AS n FROM ${table}`);
  await check.end();
  if (Number(rows[0].n) !== total) {
    throw new Error(`${rows[0].n} rows committed, expected ${total}`);
  }
  console.log(`ok ${total}`);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
