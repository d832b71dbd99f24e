/**
 * bench:ef-sweep — recall@32 against exact search and QPS (one query at a time, one thread) of one
 * saved HNSW index file at several ef, with bench:scale's held-out queries (same seed, clusters,
 * dim) and exact truth over the clip-retrieval parts the index was built from. Raw usearch only:
 * it needs no committed KB, so it can measure an index bench:scale has saved while that run still
 * builds the other one.
 *   npm run bench:ef-sweep -- --clip WORK/clip --index KB/index.image.g1.usearch --dtype f16
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DEFAULT_INDEX_PARAMS } from '../src/kb/format.ts';
import { newHnswIndex } from '../src/kb/hnsw.ts';
import { KB_DTYPES } from '../src/kb/types.ts';
import { exactTopK, scaleData } from './scale-data.ts';

const cfg = z
  .object({
    clip: z.string(),
    index: z.string(),
    dtype: z.enum(KB_DTYPES).default('f16'),
    dim: z.coerce.number().int().min(2).default(512),
    clusters: z.coerce.number().int().min(1).default(1000),
    seed: z.coerce.number().int().default(1),
    queries: z.coerce.number().int().min(1).default(200),
    ef: z.string().default('96,128,192,256,384').transform((s) => s.split(',').map((e) => z.coerce.number().int().min(1).parse(e))),
  })
  .parse(
    parseArgs({
      options: { clip: { type: 'string' }, index: { type: 'string' }, dtype: { type: 'string' }, dim: { type: 'string' }, clusters: { type: 'string' }, seed: { type: 'string' }, queries: { type: 'string' }, ef: { type: 'string' } },
      strict: true,
    }).values,
  );

const K = 32;
const { dim } = cfg;
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const queries = scaleData(cfg.seed, cfg.clusters, dim).queries(cfg.queries); // [q, dim]
log(`exact top-${K} of ${cfg.queries} queries over ${cfg.clip} ...`);
const truth = (await exactTopK(cfg.clip, queries, dim, K)).map((keys) => new Set(keys));
const load = () => loadavg().map((x) => x.toFixed(2)).join(', ');
const out = [`bench:ef-sweep — ${cfg.index} (${cfg.dtype}), ${cfg.queries} queries, k = ${K}, raw usearch, 1 thread; load average at start ${load()}`, '', '| ef | recall@32 | QPS (1 thread) |', '|---:|---:|---:|'];
let rows = 0;
for (const ef of cfg.ef) {
  const index = newHnswIndex(dim, DEFAULT_INDEX_PARAMS, cfg.dtype, ef);
  index.view(cfg.index);
  rows = index.size();
  const run = () => Array.from({ length: cfg.queries }, (_, q) => Array.from((index.search(queries.subarray(q * dim, (q + 1) * dim), K, 1) as unknown as { keys: BigUint64Array }).keys, Number));
  const found = run(); // warm-up pages the mapped index in
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    const s = performance.now();
    run();
    best = Math.min(best, performance.now() - s);
  }
  const recall = found.reduce((acc, keys, q) => acc + keys.filter((k) => truth[q].has(k)).length / K, 0) / found.length;
  log(`  ef ${ef}: recall@32 ${recall.toFixed(4)}, ${((cfg.queries / best) * 1000).toFixed(0)} QPS`);
  out.push(`| ${ef} | ${recall.toFixed(4)} | ${((cfg.queries / best) * 1000).toFixed(0)} |`);
}
out.push('', `${rows} rows in the index; load average at the end ${load()}`);
process.stdout.write(`${out.join('\n')}\n`);
