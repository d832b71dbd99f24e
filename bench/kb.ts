/**
 * KB benchmark (npm run bench:kb): builds a knowledge base over clustered 512-d unit vectors
 * through the KB's own write path, then compares its search path with raw usearch on the same
 * index file in the same run: build rate, QPS (one query at a time and batched) and recall@32
 * against exact search, at several ef values.
 *
 *   node --import tsx bench/kb.ts [--n 200000] [--queries 500] [--dim 512] [--clusters 1000] [--ef 32,64,96,128,256] [--seed 1]
 *     [--pg N [--pg-queries 200] [--pg-url postgres://user@host:port/db]]   Postgres rows (bench/kb-postgres.ts) on the first N pairs
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import usearch from 'usearch';
import { z } from 'zod';
import { checksumFiles, DEFAULT_INDEX_PARAMS } from '../src/kb/format.ts';
import { FileKnowledgeBase } from '../src/kb/file-kb.ts';
import { newHnswIndex } from '../src/kb/hnsw.ts';
import type { EmbeddedPair } from '../src/kb/types.ts';
import { Rng } from '../src/util/rng.ts';
import { intFlag, listFlag, parseBenchFlags } from './flags.ts';
import { bestOfAlternating, clusteredVectors } from './shared.ts';

const cfg = parseBenchFlags({
  n: { default: '200000', value: intFlag(1000) },
  queries: { default: '500', value: intFlag(10) },
  dim: { default: '512', value: intFlag(2) },
  clusters: { default: '1000', value: intFlag(1) },
  ef: { default: '32,64,96,128,256', value: listFlag(intFlag(1)) },
  seed: { default: '1', value: intFlag() },
  k: { default: '32', value: intFlag(1) },
  pg: { default: '0', value: intFlag(0) },
  'pg-queries': { default: '200', value: intFlag(1) },
  'pg-url': { value: z.string().optional() },
});

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

const { n, dim, k } = cfg;
const clustered = (count: number, centres: Float32Array, rng: Rng) => clusteredVectors(count, dim, centres, rng); // [count, dim]
const rng = new Rng(cfg.seed);
const centres = new Float32Array(cfg.clusters * dim);
for (let i = 0; i < centres.length; i++) centres[i] = rng.normal() / Math.sqrt(dim);
log(`generating ${n} + ${cfg.queries} clustered ${dim}-d vectors (${cfg.clusters} clusters)`);
const data = clustered(n, centres, rng); // [n, dim]
const queries = clustered(cfg.queries, centres, rng); // [q, dim]

// -- raw usearch: one index, same parameters, one add call on all cores
const dir = mkdtempSync(join(tmpdir(), 'retformer-bench-kb-'));
const params = { ...DEFAULT_INDEX_PARAMS }; // the KB's own parameters, so raw and KB search the same graph shape
log('raw usearch build ...');
let t = performance.now();
const raw = newHnswIndex(dim, params);
const keys = new BigUint64Array(n);
for (let i = 0; i < n; i++) keys[i] = BigInt(i);
raw.add(keys, data, 0);
const rawBuildS = (performance.now() - t) / 1000;
log(`raw usearch: ${rawBuildS.toFixed(1)} s`);

// -- our KB: both modalities (text vectors = a second clustered set), batched appends, commit
const kbDir = join(dir, 'kb');
const texts = clustered(n, centres, new Rng(cfg.seed + 1)); // [n, dim]
log('KB build (image + text indexes) ...');
t = performance.now();
{
  const kb = await FileKnowledgeBase.create(kbDir, { encoder: { kind: 'bench', id: 'bench-synthetic', dim }, encoderChecksum: checksumFiles(new Map()), encoderFiles: new Map(), dim });
  const tx = await kb.beginWrite({ allowNewLabels: true, indexThreads: 0 });
  const batch = 10_000;
  for (let s = 0; s < n; s += batch) {
    const pairs: EmbeddedPair[] = [];
    for (let i = s; i < Math.min(n, s + batch); i++) {
      pairs.push({
        meta: { id: `v${i}`, text: `synthetic pair ${i}`, source: `synthetic/${i}` },
        imageVector: data.subarray(i * dim, (i + 1) * dim),
        textVector: texts.subarray(i * dim, (i + 1) * dim),
      });
    }
    await tx.append(pairs);
  }
  await tx.commit();
  await kb.close();
}
const kbBuildS = (performance.now() - t) / 1000;
log(`KB build: ${kbBuildS.toFixed(1)} s`);

// -- exact ground truth
log('exact search for ground truth ...');
t = performance.now();
const exact = usearch.exactSearch(data, queries, dim, k, usearch.MetricKind.Cos, 0) as unknown as { keys: BigUint64Array };
log(`exact: ${((performance.now() - t) / 1000).toFixed(1)} s`);
const truth = Array.from({ length: cfg.queries }, (_, q) => new Set(Array.from(exact.keys.subarray(q * k, (q + 1) * k), Number)));
const recall = (found: number[][]) => found.reduce((acc, rows, q) => acc + rows.filter((r) => truth[q].has(r)).length / k, 0) / found.length;

const kb = await FileKnowledgeBase.open(kbDir);
const imageIndexFile = join(kbDir, kb.manifest.folder.files.imageIndex);
const q1 = (q: number) => queries.subarray(q * dim, (q + 1) * dim);

interface Row {
  ef: number;
  rawQps: number;
  kbQps: number;
  rawBatchQps: number;
  kbBatchQps: number;
  rawRecall: number;
  kbRecall: number;
}
const rows: Row[] = [];
for (const ef of cfg.ef) {
  const rawView = newHnswIndex(dim, params, 'f32', ef);
  rawView.view(imageIndexFile);
  const runRaw = () => {
    const out: number[][] = [];
    for (let q = 0; q < cfg.queries; q++) out.push(Array.from(rawView.search(q1(q), k, 1).keys, Number));
    return out;
  };
  const runKb = async () => {
    const out: number[][] = [];
    for (let q = 0; q < cfg.queries; q++) out.push((await kb.search(q1(q), { k, ef, queryEncoderId: 'bench-synthetic' }))[0].map((nb) => nb.row));
    return out;
  };
  // warm-up (page in the mapped file, fill the metadata cache), then alternate rounds and keep the best of each
  const rawFound = runRaw();
  const kbFound = await runKb();
  const best = await bestOfAlternating({
    raw: runRaw,
    kb: runKb,
    rawBatch: () => rawView.search(queries, k, 0),
    kbBatch: () => kb.search(queries, { k, ef, queryEncoderId: 'bench-synthetic' }),
  });
  const qps = (ms: number) => (cfg.queries / ms) * 1000;
  const row = { ef, rawQps: qps(best.raw), kbQps: qps(best.kb), rawBatchQps: qps(best.rawBatch), kbBatchQps: qps(best.kbBatch), rawRecall: recall(rawFound), kbRecall: recall(kbFound) };
  rows.push(row);
  log(`ef ${ef}: raw ${row.rawQps.toFixed(0)} QPS, KB ${row.kbQps.toFixed(0)} QPS, recall ${row.kbRecall.toFixed(4)}`);
}
await kb.close();

const f = (x: number, d = 0) => x.toFixed(d);
const lines = [
  `KB benchmark: ${n.toLocaleString('en')} clustered ${dim}-d unit vectors (${cfg.clusters} clusters), ${cfg.queries} held-out queries, k = ${k}, f32 cosine HNSW M${DEFAULT_INDEX_PARAMS.connectivity} efC${DEFAULT_INDEX_PARAMS.expansionAdd}`,
  '',
  `build: raw usearch (one index) ${f(rawBuildS, 1)} s = ${f(n / rawBuildS)} vec/s; KB (image + text index, vectors, metadata, commit) ${f(kbBuildS, 1)} s = ${f(n / kbBuildS)} pairs/s (${f((2 * n) / kbBuildS)} vec/s)`,
  '',
  '| ef | recall@32 raw | recall@32 KB | raw QPS (1 query) | KB QPS (1 query) | KB / raw | raw QPS (batch, 2 threads) | KB QPS (batch) | KB / raw |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.ef} | ${f(r.rawRecall, 4)} | ${f(r.kbRecall, 4)} | ${f(r.rawQps)} | ${f(r.kbQps)} | ${f((100 * r.kbQps) / r.rawQps)}% | ${f(r.rawBatchQps)} | ${f(r.kbBatchQps)} | ${f((100 * r.kbBatchQps) / r.rawBatchQps)}% |`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
rmSync(dir, { recursive: true, force: true });

if (cfg.pg > 0) {
  const { benchPostgres } = await import('./kb-postgres.ts');
  const pgLines = await benchPostgres({ n: Math.min(cfg.pg, n), dim, k, efs: cfg.ef, data, texts, queries, queryCount: Math.min(cfg['pg-queries'], cfg.queries), nativeUrl: cfg['pg-url'], log });
  process.stdout.write(`\n${pgLines.join('\n')}\n`);
}
