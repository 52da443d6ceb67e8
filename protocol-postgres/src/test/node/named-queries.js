// node-postgres through a connguard transaction-mode listener: named (prepared) queries from many
// client connections over few server connections, transactions, and a server error on a named query.
// Connection settings come from the PG* environment variables. Prints "ok <n>" and exits 0 on success.
'use strict';
const { Pool } = require('pg');

const table = process.argv[2];
const clients = 10;
const rounds = 20;

async function worker(pool, id) {
  for (let round = 0; round < rounds; round++) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query({ name: 'cg_insert', text: `INSERT INTO ${table} VALUES ($1)`, values: [id] });
      const r = await client.query({ name: 'cg_count', text: `SELECT count(*)::int AS n FROM ${table} WHERE n = $1`, values: [id] });
      if (r.rows[0].n !== round + 1) {
        throw new Error(`client ${id} round ${round}: saw ${r.rows[0].n} rows`);
      }
      await client.query('COMMIT');
      const again = await client.query({ name: 'cg_count', text: `SELECT count(*)::int AS n FROM ${table} WHERE n = $1`, values: [id] });
      if (again.rows[0].n !== round + 1) {
        throw new Error(`client ${id} round ${round}: saw ${again.rows[0].n} rows after commit`);
      }
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }
}

async function main() {
  const pool = new Pool({ max: clients });
  // Every pool connection opens first, so that all of them take turns on the few server connections.
  const opened = await Promise.all(Array.from({ length: clients }, () => pool.connect()));
  opened.forEach((c) => c.release());
  await Promise.all(Array.from({ length: clients }, (_, i) => worker(pool, i)));
  const client = await pool.connect();
  try {
    await client.query({ name: 'cg_missing', text: 'SELECT * FROM cg_no_such_table_anywhere WHERE 1 = $1', values: [1] });
    throw new Error('a named query on a missing table succeeded');
  } catch (e) {
    if (e.code !== '42P01') {
      throw e;
    }
  } finally {
    client.release();
  }
  const total = await pool.query({ name: 'cg_total', text: `SELECT count(*)::int AS n FROM ${table}` });
  await pool.end();
  console.log(`ok ${total.rows[0].n}`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
