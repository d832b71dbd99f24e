/**
 * bench:hnsw-params — which HNSW shape answers fastest at a given recall. A 1M-pair KB needs a far
 * wider search than a 200k one for the same recall because each cluster holds 5x the points, so a
 * test on the first 200k rows says little. This takes the rows of the first `--clusters` clusters
 * of the KB a `bench:scale --keep DIR` run left (labels c<cluster>): with 1,000 clusters in 1M
 * pairs, 200 clusters give ~200k rows at the 1M density. Queries are drawn as bench:scale draws
 * them (same seed), keeping those of the chosen clusters. Per (dtype, connectivity) it builds an
 * image index over those rows, then measures recall@32 against exact search and the time of one
 * query at a time (one thread) per ef. i8 indexes are timed with the KB's re-rank (pool of 2k,
 * re-scored with the stored i8 rows; src/kb/rerank.ts), as an i8 KB searches.
 * Builds use every core: run it under `nice -n 19` on shared machines.
 *   npm run bench:hnsw-params -- --keep-dir /work/kb-1m --clusters 200 --dtypes f16 --connectivity 16,32
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import usearch from 'usearch';
import { z } from 'zod';
import { encodeVectors } from '../src/kb/codec.ts';
import { FileKnowledgeBase } from '../src/kb/file-kb.ts';
import { DEFAULT_INDEX_PARAMS } from '../src/kb/format.ts';
import { hnswSearch, newHnswIndex } from '../src/kb/hnsw.ts';
import { RERANK_POOL_FACTOR, rerankMatches } from '../src/kb/rerank.ts';
import { VectorFile } from '../src/kb/storage.ts';
import { KB_DTYPES } from '../src/kb/types.ts';
import { Rng } from '../src/util/rng.ts';
import { scaleData } from './scale-data.ts';

const cfg = z
  .object({
    keepDir: z.string(),
    clusters: z.coerce.number().int().min(1).default(200),
    queries: z.coerce.number().int().min(1).default(200),
    dtypes: z.string().default('f16').transform((s) => s.split(',').map((d) => z.enum(KB_DTYPES).parse(d))),
    connectivity: z.string().default('16,32').transform((s) => s.split(',').map((m) => z.coerce.number().int().min(2).parse(m))),
    expansionAdd: z.coerce.number().int().min(1).default(DEFAULT_INDEX_PARAMS.expansionAdd),
    ef: z.string().default('64,96,128,192,256').transform((s) => s.split(',').map((e) => z.coerce.number().int().min(1).parse(e))),
    threads: z.coerce.number().int().min(0).default(0),
  })
  .parse(
    (() => {
      const v = parseArgs({
        options: {
          'keep-dir': { type: 'string' },
          clusters: { type: 'string' },
          queries: { type: 'string' },
          dtypes: { type: 'string' },
          connectivity: { type: 'string' },
          'expansion-add': { type: 'string' },
          ef: { type: 'string' },
          threads: { type: 'string' },
        },
        strict: true,
      }).values;
      return { ...v, keepDir: v['keep-dir'], expansionAdd: v['expansion-add'] };
    })(),
  );

const K = 32;
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const load = () => loadavg().map((x) => x.toFixed(2)).join(', ');
const kept = JSON.parse(readFileSync(join(cfg.keepDir, 'bench.json'), 'utf8')) as { n: number; dim: number; clusters: number; seed: number };
const { dim } = kept;

// ---- the rows of the chosen clusters (keys are their positions in this list) -------------------
log(`rows of clusters c0..c${cfg.clusters - 1} in ${cfg.keepDir}/kb ...`);
const kb = await FileKnowledgeBase.open(join(cfg.keepDir, 'kb'));
const chosen: number[] = [];
for (let s = 0; s < kb.rows; s += 50_000) {
  const rows = Array.from({ length: Math.min(50_000, kb.rows - s) }, (_, i) => s + i);
  const metas = await kb.meta(rows);
  metas.forEach((m, i) => {
    if (m.label !== undefined && Number(m.label.slice(1)) < cfg.clusters) chosen.push(rows[i]);
  });
}
const vectors = new Float32Array(chosen.length * dim); // [rows, dim]
for (let s = 0; s < chosen.length; s += 20_000) vectors.set(await kb.vectors(chosen.slice(s, s + 20_000), 'image'), s * dim);
await kb.close();
const keys = BigUint64Array.from(chosen, (_, i) => BigInt(i)); // local row numbers: the re-rank reads the stored rows by key
log(`  ${chosen.length} rows`);

// ---- queries of the chosen clusters, drawn as bench:scale draws them --------------------------
const drawn = scaleData(kept.seed, kept.clusters, dim).generate(cfg.queries * Math.ceil((2 * kept.clusters) / cfg.clusters), new Rng(kept.seed + 2));
const picked: number[] = [];
for (let i = 0; i < drawn.cluster.length && picked.length < cfg.queries; i++) if (drawn.cluster[i] < cfg.clusters) picked.push(i);
const queries = new Float32Array(picked.length * dim); // [q, dim]
picked.forEach((i, q) => {
  queries.set(drawn.image.subarray(i * dim, (i + 1) * dim), q * dim);
});
const count = picked.length;
const q1 = (q: number) => queries.subarray(q * dim, (q + 1) * dim);

log(`exact top-32 of ${count} queries ...`);
const exact = usearch.exactSearch(vectors, queries, dim, K, usearch.MetricKind.Cos, 0) as unknown as { keys: BigUint64Array };
const truth = Array.from({ length: count }, (_, q) => new Set(Array.from(exact.keys.subarray(q * K, (q + 1) * K), Number)));

const tmp = mkdtempSync(join(tmpdir(), 'retformer-hnsw-params-'));
const out = [`bench:hnsw-params — ${chosen.length} image rows of clusters c0..c${cfg.clusters - 1} of ${cfg.keepDir}/kb, efConstruction ${cfg.expansionAdd}, ${count} queries, k = ${K}, one query at a time, 1 thread; load average at start ${load()}`, '', '| dtype | M | build (s) | ef | recall@32 | queries with no true neighbour | ms / query (best of 3 rounds) |', '|---|---:|---:|---:|---:|---:|---:|'];
try {
  for (const dtype of cfg.dtypes) {
    // the rows as an i8 KB stores them (re-rank reads these), else as given
    const stored = join(tmp, `rows.${dtype}`);
    writeFileSync(stored, encodeVectors(vectors, dtype, dim));
    const storedFd = openSync(stored, 'r');
    const rows = new VectorFile(storedFd, stored, dim, dtype);
    for (const connectivity of cfg.connectivity) {
      const params = { ...DEFAULT_INDEX_PARAMS, connectivity, expansionAdd: cfg.expansionAdd };
      const build = newHnswIndex(dim, params, dtype);
      log(`build ${dtype} M${connectivity} ...`);
      const t = performance.now();
      const step = 20_000;
      for (let s = 0; s < chosen.length; s += step) {
        const e = Math.min(chosen.length, s + step);
        build.add(keys.subarray(s, e), vectors.subarray(s * dim, e * dim), cfg.threads);
      }
      const buildS = (performance.now() - t) / 1000;
      const path = join(tmp, `index-${dtype}-${connectivity}.usearch`);
      build.save(path);
      log(`  ${buildS.toFixed(1)} s`);
      for (const ef of cfg.ef) {
        const index = newHnswIndex(dim, params, dtype, ef);
        index.view(path);
        const one = (q: number): number[] => {
          const raw = dtype === 'i8' ? rerankMatches(hnswSearch(index, q1(q), dim, K * RERANK_POOL_FACTOR), q1(q), dim, rows, K) : hnswSearch(index, q1(q), dim, K);
          return Array.from(raw.keys.subarray(0, Number(raw.counts[0])), Number);
        };
        const found = Array.from({ length: count }, (_, q) => one(q));
        let best = Number.POSITIVE_INFINITY;
        for (let round = 0; round < 3; round++) {
          const s = performance.now();
          for (let q = 0; q < count; q++) one(q);
          best = Math.min(best, performance.now() - s);
        }
        const hits = found.map((ks, q) => ks.filter((key) => truth[q].has(key)).length);
        const recall = hits.reduce((a, h) => a + h / K, 0) / count;
        const lost = hits.filter((h) => h === 0).length; // searches that ended in another cluster
        const line = `| ${dtype} | ${connectivity} | ${buildS.toFixed(1)} | ${ef} | ${recall.toFixed(4)} | ${lost} | ${(best / count).toFixed(3)} |`;
        log(line);
        out.push(line);
      }
    }
    closeSync(storedFd);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
out.push('', `load average at the end ${load()}`);
process.stdout.write(`${out.join('\n')}\n`);
