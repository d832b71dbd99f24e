/**
 * `npm run pg:dev -- --port 5433 --data DIR`: an embedded PostgreSQL (PGlite, WebAssembly) with
 * pgvector on 127.0.0.1:PORT for users without a PostgreSQL server, data kept in DIR. Then
 *   retformer kb build --pairs pairs.csv --out 'postgres://postgres@127.0.0.1:5433/postgres?table=my_kb'
 * Stops cleanly (data flushed) on Ctrl-C or SIGTERM. Loopback only: there is no password.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startPgliteServer } from '../src/kb/postgres/pglite-server.ts';

function fail(message: string): never {
  process.stderr.write(`pg:dev: ${message}\n`);
  process.exit(2);
}

let values: { port?: string; data?: string; 'max-connections'?: string };
try {
  ({ values } = parseArgs({ options: { port: { type: 'string' }, data: { type: 'string' }, 'max-connections': { type: 'string' } }, strict: true }));
} catch (err) {
  fail(`${(err as Error).message} (usage: npm run pg:dev -- --port 5433 --data DIR)`);
}
const port = Number(values.port ?? '5433');
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port ${values.port}: not a port number`);
if (values.data === undefined) fail('--data DIR is required (the folder that keeps the database between runs)');
const maxConnections = Number(values['max-connections'] ?? '16');
if (!Number.isInteger(maxConnections) || maxConnections < 1) fail(`--max-connections ${values['max-connections']}: not a positive integer`);
const data = resolve(values.data);
mkdirSync(data, { recursive: true });

let server: Awaited<ReturnType<typeof startPgliteServer>>;
try {
  server = await startPgliteServer({ dataDir: data, port, host: '127.0.0.1', maxConnections });
} catch (err) {
  const e = err as { code?: string; message?: string };
  fail(e.code === 'EADDRINUSE' ? `port ${port} is in use; pick another with --port` : (e.message ?? String(err)));
}
process.stdout.write(
  `PGlite (PostgreSQL in WebAssembly) with pgvector on 127.0.0.1:${server.port}, data in ${data}\n` +
    `  --kb '${server.specFor('NAME')}'\n` +
    `  psql -h 127.0.0.1 -p ${server.port} -U postgres postgres\n` +
    'Ctrl-C stops it.\n',
);
let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`${signal}: stopping, flushing ${data}\n`);
  await server.stop();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
