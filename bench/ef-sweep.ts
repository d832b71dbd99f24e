/**
 * bench:ef-sweep — recall@32 against exact search and search cost (one query at a time, one
 * thread) of saved HNSW index files at several ef. Raw usearch only: it needs no committed KB, so
 * it can measure an index bench:scale has saved while that run still builds the other one, or an
 * index built with other parameters (bench:hnsw-params) over the same rows.
 *   npm run bench:ef-sweep -- --clip WORK/clip --index KB/image-000001.usearch --dtype f16
 *   npm run bench:ef-sweep -- --keep-dir /work/kb-1m --index A.usearch,B.usearch
 * `--clip` draws bench:scale's held-out queries (same seed, clusters, dim) and computes the exact
 * truth over the parts; `--keep-dir` takes the queries and exact truth a `bench:scale --keep` run
 * left. Several index files are timed in alternating rounds (a change of load hits all alike);
 * per ef and file: recall@32, the queries whose search found none of their true neighbours (a
 * greedy descent that ended in another cluster), the best of 5 rounds in wall QPS and in CPU ms
 * per query (user + system of this process: what other work on the cores inflates least).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DEFAULT_INDEX_PARAMS } from '../src/kb/format.ts';
import { newHnswIndex } from '../src/kb/hnsw.ts';
import { KB_DTYPES } from '../src/kb/types.ts';
import { exactTopK, scaleData } from './scale-data.ts';
import { readKeptQueries } from './shared.ts';

const cfg = z
  .object({
    clip: z.string().optional(),
    keepDir: z.string().optional(),
    index: z.string().transform((s) => s.split(',')),
    dtype: z.enum(KB_DTYPES).default('f16'),
    dim: z.coerce.number().int().min(2).default(512),
    clusters: z.coerce.number().int().min(1).default(1000),
    seed: z.coerce.number().int().default(1),
    queries: z.coerce.number().int().min(1).default(200),
    ef: z.string().default('96,128,192,256,384').transform((s) => s.split(',').map((e) => z.coerce.number().int().min(1).parse(e))),
  })
  .refine((c) => (c.clip === undefined) !== (c.keepDir === undefined), 'give one of --clip and --keep-dir')
  .parse(
    (() => {
      const v = parseArgs({
        options: {
          clip: { type: 'string' },
          'keep-dir': { type: 'string' },
          index: { type: 'string' },
          dtype: { type: 'string' },
          dim: { type: 'string' },
          clusters: { type: 'string' },
          seed: { type: 'string' },
          queries: { type: 'string' },
          ef: { type: 'string' },
        },
        strict: true,
      }).values;
      return { ...v, keepDir: v['keep-dir'] };
    })(),
  );

const K = 32;
const { dim } = cfg;
const log = (msg: string) => process.stderr.write(`${msg}\n`);

/** Queries [q, dim] and the exact top-32 of each. */
async function queriesAndTruth(): Promise<{ queries: Float32Array; truth: Set<number>[] }> {
  if (cfg.keepDir !== undefined) {
    const { queries, truth } = readKeptQueries(cfg.keepDir);
    return { queries, truth: truth.map((keys) => new Set(keys)) };
  }
  const queries = scaleData(cfg.seed, cfg.clusters, dim).queries(cfg.queries); // [q, dim]
  log(`exact top-${K} of ${cfg.queries} queries over ${cfg.clip} ...`);
  return { queries, truth: (await exactTopK(cfg.clip!, queries, dim, K)).map((keys) => new Set(keys)) };
}

const { queries, truth } = await queriesAndTruth();
const count = queries.length / dim;
const q1 = (q: number) => queries.subarray(q * dim, (q + 1) * dim);
const load = () => loadavg().map((x) => x.toFixed(2)).join(', ');
const out = [
  `bench:ef-sweep — ${cfg.index.join(', ')} (${cfg.dtype}), ${count} queries, k = ${K}, raw usearch, 1 thread; load average at start ${load()}`,
  '',
  '| index | M | rows | ef | recall@32 | queries with no true neighbour | QPS (1 thread) | CPU ms / query |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
];
for (const ef of cfg.ef) {
  // the file's own connectivity is read on view; DEFAULT_INDEX_PARAMS only fills the constructor
  const indexes = cfg.index.map((file) => {
    const index = newHnswIndex(dim, DEFAULT_INDEX_PARAMS, cfg.dtype, ef);
    index.view(file);
    return index;
  });
  const run = (index: (typeof indexes)[number]) => Array.from({ length: count }, (_, q) => Array.from((index.search(q1(q), K, 1) as unknown as { keys: BigUint64Array }).keys, Number));
  const found = indexes.map(run); // also the warm-up that pages the mapped indexes in
  const bestWall = indexes.map(() => Number.POSITIVE_INFINITY);
  const bestCpu = indexes.map(() => Number.POSITIVE_INFINITY);
  for (let round = 0; round < 5; round++) {
    indexes.forEach((index, i) => {
      const c = process.cpuUsage();
      const s = performance.now();
      run(index);
      bestWall[i] = Math.min(bestWall[i], performance.now() - s);
      const used = process.cpuUsage(c);
      bestCpu[i] = Math.min(bestCpu[i], (used.user + used.system) / 1000);
    });
  }
  indexes.forEach((index, i) => {
    const hits = found[i].map((keys, q) => keys.filter((k) => truth[q].has(k)).length);
    const recall = hits.reduce((a, h) => a + h / K, 0) / count;
    const lost = hits.filter((h) => h === 0).length;
    const line = `| ${cfg.index[i]} | ${index.connectivity()} | ${index.size()} | ${ef} | ${recall.toFixed(4)} | ${lost} | ${((count / bestWall[i]) * 1000).toFixed(0)} | ${(bestCpu[i] / count).toFixed(3)} |`;
    log(line);
    out.push(line);
  });
}
out.push('', `load average at the end ${load()}`);
process.stdout.write(`${out.join('\n')}\n`);
