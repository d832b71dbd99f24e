/**
 * The KB conformance suite (test/helpers/kb-conformance.ts) against the Postgres backend over the
 * wire protocol: the `pg` client talking to PGlite (PostgreSQL + pgvector in WebAssembly) through
 * its socket server on a loopback port chosen here. RETFORMER_TEST_PG_URL=postgres://user@host:port/db
 * runs it against a native server as well.
 */
import { after } from 'node:test';
import { type PgliteServer, startPgliteServer } from '../src/kb/postgres/pglite-server.ts';
import { runKbConformance } from './helpers/kb-conformance.ts';

let server: Promise<PgliteServer> | undefined;
after(async () => {
  if (server) await (await server).stop();
});

let n = 0;
runKbConformance({
  name: 'postgres (PGlite over the wire)',
  newSpec: async () => {
    server ??= startPgliteServer();
    return (await server).specFor(`conf_${n++}`);
  },
  exact: false,
  dtypes: ['f32', 'f16'],
});

const nativeUrl = process.env.RETFORMER_TEST_PG_URL;
if (nativeUrl) {
  let m = 0;
  runKbConformance({ name: 'postgres (native server)', newSpec: () => `${nativeUrl}?table=conf_${process.pid}_${m++}`, exact: false, dtypes: ['f32', 'f16'] });
}
