/**
 * The Postgres + pgvector KB backend over the real Postgres wire protocol: the `pg` client against
 * PGlite (PostgreSQL in WebAssembly, with pgvector) served by its socket server on a loopback port
 * the test picks (port 0). Set RETFORMER_TEST_PG_URL=postgres://user@host:port/db to run the same
 * tests against a native server too (there bulk loads go through COPY).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { PostgresKnowledgeBase, parsePgSpec } from '../src/kb/postgres/index.ts';
import { startPgliteServer } from '../src/kb/postgres/pglite-server.ts';
import { createKnowledgeBase, openKnowledgeBaseSpec } from '../src/kb/registry.ts';
import type { EmbeddedPair, Neighbour, WritableKnowledgeBase } from '../src/kb/types.ts';
import { clusteredPairs, exactTopIds, fakeEncoder } from './helpers/pg-fixtures.ts';

const DIM = 16;
const enc = fakeEncoder(DIM);
const ids = (list: Neighbour[]) => list.map((n) => n.id);

interface Server {
  name: string;
  spec: (table: string) => string;
  stop: () => Promise<void>;
}

const servers: Array<{ name: string; start: () => Promise<Server> }> = [
  {
    name: 'PGlite over the wire',
    start: async () => {
      const s = await startPgliteServer();
      return { name: 'pglite', spec: s.specFor, stop: s.stop };
    },
  },
];
const nativeUrl = process.env.RETFORMER_TEST_PG_URL;
if (nativeUrl) {
  servers.push({
    name: 'native PostgreSQL',
    start: async () => ({ name: 'native', spec: (t) => `${nativeUrl}?table=${t}`, stop: async () => undefined }),
  });
}

let tableCounter = 0;
const freshTable = () => `kbt_${process.pid}_${tableCounter++}`;

/** Build a KB of `pairs` in one commit; returns it open. */
async function buildKb(spec: string, pairs: readonly EmbeddedPair[], dtype: 'f32' | 'f16' = 'f32', overwrite = false): Promise<WritableKnowledgeBase> {
  const kb = await createKnowledgeBase(spec, enc.create({ dtype, overwrite }));
  const w = await kb.beginWrite({ allowNewLabels: true });
  for (let i = 0; i < pairs.length; i += 100) await w.append(pairs.slice(i, i + 100));
  await w.commit();
  return kb;
}

for (const { name, start } of servers) {
  describe(`Postgres KB: ${name}`, () => {
    let server: Server;
    const opened: WritableKnowledgeBase[] = [];
    const track = <T extends WritableKnowledgeBase>(kb: T): T => {
      opened.push(kb);
      return kb;
    };

    before(async () => {
      server = await start();
    });
    after(async () => {
      for (const kb of opened) await kb.close().catch(() => undefined);
      await server.stop();
    });

    test('build, search best first with cosine similarity, as an exact search would', async () => {
      const pairs = clusteredPairs(300, DIM, { seed: 1 });
      const spec = server.spec(freshTable());
      assert.equal(await PostgresKnowledgeBase.exists(spec), false);
      const kb = track(await buildKb(spec, pairs));
      assert.equal(kb.manifest.generation, 1);
      assert.equal(kb.size, 300);
      assert.equal(kb.dim, DIM);
      assert.equal(kb.encoderId, enc.descriptor.id);
      assert.equal(await PostgresKnowledgeBase.exists(spec), true);
      const reader = track(await openKnowledgeBaseSpec(spec));
      assert.equal(reader.size, 300);
      assert.deepEqual(reader.manifest.labels, ['c0', 'c1', 'c2', 'c3']);
      const queries = clusteredPairs(5, DIM, { seed: 99 });
      for (const modality of ['image', 'text'] as const) {
        const qv = new Float32Array(queries.flatMap((p) => [...p.imageVector]));
        const results = await reader.search(qv, { k: 10, modality, queryEncoderId: enc.descriptor.id });
        assert.equal(results.length, 5);
        results.forEach((list, i) => {
          assert.deepEqual(ids(list), exactTopIds(pairs, queries[i].imageVector, 10, modality), `${modality} query ${i}`);
          for (let j = 1; j < list.length; j++) assert.ok(list[j - 1].similarity >= list[j].similarity, 'best first');
          const p = pairs.find((x) => x.meta.id === list[0].id)!;
          const v = modality === 'image' ? p.imageVector : p.textVector;
          const cos = v.reduce((s, x, j) => s + x * queries[i].imageVector[j], 0);
          assert.ok(Math.abs(list[0].similarity - cos) < 1e-5, `similarity ${list[0].similarity} is the cosine ${cos}`);
          assert.equal(list[0].label, p.meta.label);
          assert.equal(list[0].source, p.meta.source);
        });
      }
      // the pair itself comes first, then leaves the list under the leakage guard with k still returned
      const self = pairs[17];
      const [plain] = await reader.search(self.imageVector, { k: 8, queryEncoderId: enc.descriptor.id });
      assert.equal(plain[0].id, self.meta.id);
      assert.ok(Math.abs(plain[0].similarity - 1) < 1e-5);
      const exclude = new Set([self.meta.id, plain[1].id, plain[2].id]);
      const [guarded] = await reader.search(self.imageVector, { k: 8, queryEncoderId: enc.descriptor.id, excludeIds: [exclude] });
      assert.equal(guarded.length, 8);
      assert.deepEqual(ids(guarded), exactTopIds(pairs, self.imageVector, 8, 'image', exclude));
      // past pgvector's ef_search cap the query runs as an exact scan: same answer
      const [wide] = await reader.search(self.imageVector, { k: 8, ef: 5000, queryEncoderId: enc.descriptor.id });
      assert.deepEqual(ids(wide), ids(plain));
      await assert.rejects(reader.search(self.imageVector, { k: 3, queryEncoderId: 'other-encoder' }), /built with "fake-16"/);
      await assert.rejects(reader.search(new Float32Array(DIM + 1), { k: 3, queryEncoderId: enc.descriptor.id }), /wrong dimension/);
    });

    test('add and remove commit new generations; removed pairs are never returned; row keys stay', async () => {
      const pairs = clusteredPairs(120, DIM, { seed: 2 });
      const spec = server.spec(freshTable());
      const kb = track(await buildKb(spec, pairs.slice(0, 100)));
      const [before] = await kb.search(pairs[5].imageVector, { k: 5, queryEncoderId: enc.descriptor.id });
      const rowOf = new Map(before.map((n) => [n.id, n.row]));
      const w = await kb.beginWrite();
      await w.append(pairs.slice(100));
      assert.deepEqual(w.pending, { added: 20, removed: 0 });
      await w.remove([pairs[5].meta.id, before[1].id]);
      // a reader meanwhile still sees generation 1
      const reader = track(await openKnowledgeBaseSpec(spec));
      assert.equal(reader.manifest.generation, 1);
      const m = await w.commit();
      assert.equal(m.generation, 2);
      assert.equal(m.count, 118);
      assert.equal(kb.size, 118);
      await reader.refresh();
      assert.equal(reader.manifest.generation, 2);
      const gone = new Set([pairs[5].meta.id, before[1].id]);
      const live = pairs.filter((p) => !gone.has(p.meta.id));
      for (const qi of [5, 40, 110]) {
        const [list] = await reader.search(pairs[qi].imageVector, { k: 12, queryEncoderId: enc.descriptor.id });
        assert.equal(list.length, 12);
        assert.ok(!list.some((n) => gone.has(n.id)), 'removed pairs are not returned');
        assert.deepEqual(ids(list), exactTopIds(live, pairs[qi].imageVector, 12));
        for (const n of list) if (rowOf.has(n.id)) assert.equal(n.row, rowOf.get(n.id), `row key of ${n.id} unchanged`);
      }
      // new pairs got new keys after the old ones; vectors and metadata come back by row
      const [added] = await reader.search(pairs[110].imageVector, { k: 1, queryEncoderId: enc.descriptor.id });
      assert.equal(added[0].id, pairs[110].meta.id);
      assert.equal(added[0].row, 110);
      const vecs = await reader.vectors([added[0].row, 0], 'text');
      for (let j = 0; j < DIM; j++) assert.ok(Math.abs(vecs[j] - pairs[110].textVector[j]) < 1e-6);
      assert.deepEqual((await reader.meta([0, 110])).map((x) => x.id), [pairs[0].meta.id, pairs[110].meta.id]);
      await assert.rejects(reader.vectors([120], 'image'), /row 120 out of range/);
      // a removed id can come back as a new pair with a new row key
      const w2 = await kb.beginWrite();
      await w2.append([{ ...pairs[5], meta: { ...pairs[5].meta } }]);
      const m3 = await w2.commit();
      assert.equal(m3.count, 119);
      const [back] = await kb.search(pairs[5].imageVector, { k: 1, queryEncoderId: enc.descriptor.id });
      assert.deepEqual([back[0].id, back[0].row], [pairs[5].meta.id, 120]);
      // compaction drops tombstoned rows for good; live keys do not move
      const c = await kb.compact();
      assert.equal(c.generation, 4);
      assert.equal(c.count, 119);
      const [after] = await kb.search(pairs[110].imageVector, { k: 1, queryEncoderId: enc.descriptor.id });
      assert.equal(after[0].row, 110);
    });

    test('bad input is refused with the pair named, and nothing changes', async () => {
      const pairs = clusteredPairs(40, DIM, { seed: 3 });
      const spec = server.spec(freshTable());
      const kb = track(await buildKb(spec, pairs.slice(0, 30)));
      const w = await kb.beginWrite();
      await assert.rejects(w.append([pairs[3]], () => 'pairs.csv:4'), /pairs\.csv:4: duplicate id "p3"/);
      await assert.rejects(w.append([{ ...pairs[31], meta: { ...pairs[31].meta, label: 'zebra' } }], () => 'x.csv:2'), /x\.csv:2: unknown label "zebra"/);
      const bad = { ...pairs[32], imageVector: new Float32Array(DIM).fill(Number.NaN) };
      await assert.rejects(w.append([pairs[31], bad]), /pair 2: image vector contains NaN/);
      await assert.rejects(w.remove(['nope']), /unknown id "nope"/);
      // a second writer is refused while this one is open
      await assert.rejects(kb.beginWrite(), /already writing this knowledge base/);
      await w.abort();
      assert.equal(kb.manifest.generation, 1);
      if (!(kb as PostgresKnowledgeBase).sharedSession) {
        // another process holding the KB's advisory lock (a real server; PGlite has one session for all)
        const other = new pg.Client({ connectionString: parsePgSpec(spec).connectionString });
        await other.connect();
        try {
          await other.query('SELECT pg_advisory_lock($1::bigint)', [parsePgSpec(spec).lockKey]);
          await assert.rejects(kb.beginWrite(), /another session is writing this knowledge base/);
        } finally {
          await other.end();
        }
      }
      await kb.refresh();
      assert.equal(kb.size, 30);
      const w2 = await kb.beginWrite();
      await w2.abort();
      await assert.rejects(createKnowledgeBase(spec, enc.create()), /already exists/);
      await assert.rejects(createKnowledgeBase(spec, enc.create({ dtype: 'i8' })), /no 8-bit vector type/);
      await assert.rejects(openKnowledgeBaseSpec(server.spec('no_such_kb')), /no knowledge base there/);
    });

    test('a load that fails part way leaves the last committed generation', async () => {
      const pairs = clusteredPairs(260, DIM, { seed: 4 });
      const spec = server.spec(freshTable());
      const kb = track(await buildKb(spec, pairs.slice(0, 200)));
      const w = await kb.beginWrite();
      await w.append(pairs.slice(200, 230));
      await assert.rejects(w.append([pairs[230], { ...pairs[231], textVector: new Float32Array(DIM) }]), /all zeros/);
      await w.abort();
      const reader = track(await openKnowledgeBaseSpec(spec));
      assert.equal(reader.manifest.generation, 1);
      assert.equal(reader.size, 200);
      const [list] = await reader.search(pairs[210].imageVector, { k: 3, queryEncoderId: enc.descriptor.id });
      assert.ok(!list.some((n) => Number(n.id.slice(1)) >= 200), 'nothing of the aborted load is visible');
    });

    test('a writer killed mid-load or just before COMMIT leaves the last committed generation', async () => {
      const pairs = clusteredPairs(150, DIM, { seed: 5 });
      const table = freshTable();
      const spec = server.spec(table);
      const kb = track(await buildKb(spec, pairs.slice(0, 100)));
      for (const point of ['pg:after-first-batch', 'pg:before-commit']) {
        const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/pg-writer-child.ts', spec, '100', '150', '5', DIM.toString()], {
          env: { ...process.env, RETFORMER_TEST_CRASH_AT: point },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        const exit = await new Promise<{ code: number | null; signal: string | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
        assert.equal(exit.signal, 'SIGKILL', `${point}: the writer died by SIGKILL (exit ${exit.code}: ${stderr.slice(0, 400)})`);
        await kb.refresh();
        assert.equal(kb.manifest.generation, 1, point);
        assert.equal(kb.size, 100, point);
        const [list] = await kb.search(pairs[120].imageVector, { k: 5, queryEncoderId: enc.descriptor.id });
        assert.ok(!list.some((n) => Number(n.id.slice(1)) >= 100), `${point}: nothing of the killed load is visible`);
      }
      // the next writer gets the lock, clears the dead writer's staging table and commits
      const w = await kb.beginWrite();
      await w.append(pairs.slice(100));
      const m = await w.commit();
      assert.deepEqual([m.generation, m.count], [2, 150]);
      const client = new pg.Client({ connectionString: spec.replace(/\?table=.*$/, '') });
      await client.connect();
      try {
        const { rows } = await client.query('SELECT count(*)::int AS n FROM pg_tables WHERE starts_with(tablename, $1)', [`${table}_stage_`]);
        assert.equal(rows[0].n, 0, 'no staging table is left behind');
      } finally {
        await client.end();
      }
    });

    test('f16 (halfvec) KB; replacing a KB is atomic at its first commit', async () => {
      const pairs = clusteredPairs(120, DIM, { seed: 6 });
      const spec = server.spec(freshTable());
      const kb = track(await buildKb(spec, pairs.slice(0, 60), 'f16'));
      assert.equal(kb.manifest.dtype, 'f16');
      const [list] = await kb.search(pairs[7].imageVector, { k: 5, queryEncoderId: enc.descriptor.id });
      assert.deepEqual(ids(list), exactTopIds(pairs.slice(0, 60), pairs[7].imageVector, 5));
      const v = await kb.vectors([7], 'image');
      for (let j = 0; j < DIM; j++) assert.ok(Math.abs(v[j] - pairs[7].imageVector[j]) < 2e-3, 'half precision');
      // overwrite with another dim and dtype: readers see the old KB until the new one commits
      const enc8 = fakeEncoder(8, 'fake-8');
      const next = track(await createKnowledgeBase(spec, { ...enc8.create({ overwrite: true }), dtype: 'f32' }));
      const w = await next.beginWrite({ allowNewLabels: true });
      await w.append(clusteredPairs(10, 8, { seed: 7, prefix: 'n' }));
      const reader = track(await openKnowledgeBaseSpec(spec));
      assert.deepEqual([reader.dim, reader.size], [DIM, 60]);
      await w.commit();
      const fresh = track(await openKnowledgeBaseSpec(spec));
      assert.deepEqual([fresh.dim, fresh.size, fresh.manifest.dtype, fresh.encoderId, fresh.manifest.generation], [8, 10, 'f32', 'fake-8', 1]);
      assert.deepEqual([...(await fresh.encoderFiles()).keys()], ['weights.json']);
      // a manifest table this backend cannot read is refused, and replaced only when asked to overwrite
      const table = freshTable();
      const client = new pg.Client({ connectionString: parsePgSpec(spec).connectionString });
      await client.connect();
      await client.query(`CREATE TABLE ${table}_manifest (something integer)`);
      await client.end();
      await assert.rejects(createKnowledgeBase(server.spec(table), enc.create()), /column .* does not exist/);
      const replaced = track(await buildKb(server.spec(table), pairs.slice(0, 5), 'f32', true));
      await assert.rejects(createKnowledgeBase(server.spec(table), enc.create()), /already exists/);
      assert.equal(replaced.size, 5);
    });
  });
}

test('Postgres: a search that names no ef widens with the table, as the file backend does', async () => {
  const { pgDefaultEf } = await import('../src/kb/postgres/postgres-kb.ts');
  const { defaultSearchEf } = await import('../src/kb/format.ts');
  const hnsw = { m: 16, efConstruction: 128, efSearch: 96 };
  assert.equal(pgDefaultEf({ rows: 5_000, hnsw }), 96);
  assert.equal(pgDefaultEf({ rows: 1_000_000, hnsw }), 256);
  assert.equal(pgDefaultEf({ rows: 2_000_000, hnsw }), defaultSearchEf(2_000_000));
  assert.equal(pgDefaultEf({ rows: 5_000, hnsw: { ...hnsw, efSearch: 500 } }), 500, 'never below the recorded efSearch');
});
