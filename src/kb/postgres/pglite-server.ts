import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * PostgreSQL compiled to WebAssembly (PGlite) with pgvector, served over the ordinary Postgres wire
 * protocol on a loopback port, so the `pg` client (and psql) talk to it as to any server. Used by
 * `npm run pg:dev` and the tests. PGlite is one backend session: the socket server multiplexes its
 * connections (a transaction holds the others' queries until it ends), and advisory locks do not
 * exclude between connections.
 */
export interface PgliteServer {
  port: number;
  host: string;
  /** postgres://postgres@HOST:PORT/postgres?table=TABLE */
  specFor(table: string): string;
  stop(): Promise<void>;
}

export async function startPgliteServer(options: { dataDir?: string; port?: number; host?: string; maxConnections?: number } = {}): Promise<PgliteServer> {
  const db = await PGlite.create(options.dataDir ?? 'memory://', { extensions: { vector } });
  await db.exec('CREATE EXTENSION IF NOT EXISTS vector');
  const host = options.host ?? '127.0.0.1';
  const server = new PGLiteSocketServer({ db, host, port: options.port ?? 0, maxConnections: options.maxConnections ?? 16 });
  try {
    await server.start();
  } catch (err) {
    await db.close();
    throw err;
  }
  const port = Number(server.getServerConn().split(':').pop());
  let stopped = false;
  return {
    port,
    host,
    specFor: (table) => `postgres://postgres@${host}:${port}/postgres?table=${table}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await db.close();
    },
  };
}
