/**
 * KB dtype benchmark (npm run bench:kb-dtype): the same clustered 512-d pairs stored as f32, f16
 * and i8 KBs (vectors and usearch indexes at that precision) through the KB's write path; per
 * dtype: build time, bytes per pair on disk, cold open (open + first search: the index is
 * memory-mapped), recall@32 of the KB search against exact f32 search, and single-query QPS.
 *
 *   node --import tsx bench/kb-dtype.ts [--n 20000] [--queries 300] [--dim 512] [--clusters 200] [--ef 64,96,128] [--dtypes f32,f16,i8] [--seed 1]
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import usearch from 'usearch';
import { z } from 'zod';
import { FileKnowledgeBase } from '../src/kb/file-kb.ts';
import { checksumFiles, DEFAULT_INDEX_PARAMS } from '../src/kb/format.ts';
import { KB_DTYPES, type EmbeddedPair } from '../src/kb/types.ts';
import { Rng } from '../src/util/rng.ts';
import { intFlag, listFlag, parseBenchFlags } from './flags.ts';
import { clusteredVectors } from './shared.ts';

const cfg = parseBenchFlags({
  n: { default: '20000', value: intFlag(1000) },
  queries: { default: '300', value: intFlag(10) },
  dim: { default: '512', value: intFlag(2) },
  clusters: { default: '200', value: intFlag(1) },
  ef: { default: '64,96,128', value: listFlag(intFlag(1)) },
  dtypes: { default: 'f32,f16,i8', value: listFlag(z.enum(KB_DTYPES)) },
  seed: { default: '1', value: intFlag() },
  k: { default: '32', value: intFlag(1) },
});
const { n, dim, k } = cfg;

const clustered = (count: number, centres: Float32Array, rng: Rng) => clusteredVectors(count, dim, centres, rng); // [count, dim]
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const folderBytes = (d: string): number => readdirSync(d).reduce((acc, name) => acc + (statSync(join(d, name)).isDirectory() ? folderBytes(join(d, name)) : statSync(join(d, name)).size), 0);

const rng = new Rng(cfg.seed);
const centres = new Float32Array(cfg.clusters * dim);
for (let i = 0; i < centres.length; i++) centres[i] = rng.normal() / Math.sqrt(dim);
log(`generating ${n} pairs + ${cfg.queries} queries (${dim}-d, ${cfg.clusters} clusters)`);
const images = clustered(n, centres, rng); // [n, dim]
const texts = clustered(n, centres, rng); // [n, dim]
const queries = clustered(cfg.queries, centres, rng); // [q, dim]
const exact = usearch.exactSearch(images, queries, dim, k, usearch.MetricKind.Cos, 0) as unknown as { keys: BigUint64Array };
const truth = Array.from({ length: cfg.queries }, (_, q) => new Set(Array.from(exact.keys.subarray(q * k, (q + 1) * k), Number)));

const work = mkdtempSync(join(tmpdir(), 'retformer-bench-dtype-'));
const encoder = { kind: 'bench', id: 'bench-synthetic', dim };
interface Row {
  dtype: string;
  buildS: number;
  bytesPerPair: number;
  coldOpenMs: number;
  recall: Map<number, number>;
  qps: Map<number, number>;
}
const rows: Row[] = [];
try {
  for (const dtype of cfg.dtypes) {
    const dir = join(work, dtype);
    log(`${dtype}: building ...`);
    let t = performance.now();
    const kb = await FileKnowledgeBase.create(dir, { encoder, encoderChecksum: checksumFiles(new Map()), encoderFiles: new Map(), dim, dtype });
    const w = await kb.beginWrite({ allowNewLabels: true, indexThreads: 0 });
    for (let s = 0; s < n; s += 5000) {
      const pairs: EmbeddedPair[] = [];
      for (let i = s; i < Math.min(n, s + 5000); i++) {
        pairs.push({ meta: { id: `v${i}`, text: `pair ${i}`, source: `synthetic/${i}` }, imageVector: images.subarray(i * dim, (i + 1) * dim), textVector: texts.subarray(i * dim, (i + 1) * dim) });
      }
      await w.append(pairs);
    }
    await w.commit();
    await kb.close();
    const buildS = (performance.now() - t) / 1000;
    const bytesPerPair = (folderBytes(dir) - folderBytes(join(dir, 'encoder'))) / n;
    t = performance.now();
    const reader = await FileKnowledgeBase.open(dir);
    await reader.search(queries.subarray(0, dim), { k, queryEncoderId: encoder.id });
    const coldOpenMs = performance.now() - t;
    const recall = new Map<number, number>();
    const qps = new Map<number, number>();
    for (const ef of cfg.ef) {
      let hits = 0;
      await reader.search(queries.subarray(0, dim), { k, ef, queryEncoderId: encoder.id }); // view this ef's index
      t = performance.now();
      for (let q = 0; q < cfg.queries; q++) {
        const [found] = await reader.search(queries.subarray(q * dim, (q + 1) * dim), { k, ef, queryEncoderId: encoder.id });
        hits += found.filter((nb) => truth[q].has(nb.row)).length;
      }
      qps.set(ef, cfg.queries / ((performance.now() - t) / 1000));
      recall.set(ef, hits / (cfg.queries * k));
    }
    await reader.close();
    rows.push({ dtype, buildS, bytesPerPair, coldOpenMs, recall, qps });
    log(`${dtype}: ${buildS.toFixed(1)} s, ${bytesPerPair.toFixed(0)} B/pair, recall ${[...recall.values()].map((r) => r.toFixed(4)).join(' ')}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const f = (x: number, d = 0) => x.toFixed(d);
const f32 = rows.find((r) => r.dtype === 'f32');
const lines = [
  `KB dtypes: ${n.toLocaleString('en')} clustered ${dim}-d pairs (${cfg.clusters} clusters), ${cfg.queries} held-out queries, k = ${k}, cosine HNSW M${DEFAULT_INDEX_PARAMS.connectivity} efC${DEFAULT_INDEX_PARAMS.expansionAdd}, recall@${k} of the image search against exact f32 search`,
  '',
  `| dtype | build s | bytes/pair | vs f32 | cold open + first search ms | ${cfg.ef.map((ef) => `recall@${k} ef ${ef}`).join(' | ')} | ${cfg.ef.map((ef) => `QPS ef ${ef}`).join(' | ')} |`,
  `|---|---|---|---|---|${cfg.ef.map(() => '---|').join('')}${cfg.ef.map(() => '---|').join('')}`,
  ...rows.map(
    (r) =>
      `| ${r.dtype} | ${f(r.buildS, 1)} | ${f(r.bytesPerPair)} | ${f32 ? `${f((100 * r.bytesPerPair) / f32.bytesPerPair)}%` : '-'} | ${f(r.coldOpenMs, 1)} | ${cfg.ef.map((ef) => f(r.recall.get(ef) ?? 0, 4)).join(' | ')} | ${cfg.ef.map((ef) => f(r.qps.get(ef) ?? 0)).join(' | ')} |`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
