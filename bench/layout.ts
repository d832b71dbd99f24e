/**
 * bench:layout — what the locality layout of an HNSW file (src/kb/hnsw-layout.ts) does to search.
 *
 * It reads a folder a `bench:scale --keep DIR` run left (DIR/kb, DIR/queries.f32, DIR/truth.json),
 * copies the KB's image index twice into --work (default: beside the KB), lays one copy out in
 * key order (the layout usearch writes for a KB indexed in one go, what KBs had before the
 * layout) and the other for locality (what every KB commit now writes), then searches the queries
 * one at a time on each, raw usearch on a memory-mapped view at the KB's default ef, alternating
 * the two files round after round so that a change of load hits both alike.
 *
 *   npm run bench:layout -- --reuse DIR [--rounds 4] [--work DIR]
 *
 * Prints a Markdown table (stdout): per layout, p50 / mean ms per query (each query's best round),
 * QPS, recall@32, the median link span and the share of level-0 links shorter than 1,024 slots,
 * and the seconds the layout took. Progress on stderr. The copies are removed at the end.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { manifestDefaultEf, readManifest } from '../src/kb/format.ts';
import { newHnswIndex } from '../src/kb/hnsw.ts';
import { layOutIndexFile, linkLocality } from '../src/kb/hnsw-layout.ts';
import { intFlag, parseBenchFlags } from './flags.ts';
import { readKeptQueries } from './shared.ts';

const K = 32;
const NEAR = 1024;
const flags = parseBenchFlags({
  reuse: { value: z.string() },
  rounds: { default: '4', value: intFlag(1) },
  work: { value: z.string().optional() },
});
const log = (msg: string) => process.stderr.write(`${msg}\n`);

const dir = resolve(flags.reuse);
const kbDir = join(dir, 'kb');
const m = readManifest(kbDir);
const ef = manifestDefaultEf(m);
const { queries, truth } = readKeptQueries(dir);
const count = truth.length;
const work = mkdtempSync(join(flags.work ? resolve(flags.work) : dir, 'layout-'));

try {
  const layouts = ['key', 'locality'] as const;
  const files = new Map<string, { path: string; layoutS: number }>();
  for (const by of layouts) {
    const path = join(work, `image-${by}.usearch`);
    log(`copying ${m.folder.files.imageIndex} and laying it out by ${by} ...`);
    copyFileSync(join(kbDir, m.folder.files.imageIndex), path);
    const t0 = performance.now();
    const layout = layOutIndexFile(path, by);
    if (layout.reason !== undefined) throw new Error(`${path}: not laid out: ${layout.reason}`);
    files.set(by, { path, layoutS: (performance.now() - t0) / 1000 });
  }
  const indexes = new Map(
    layouts.map((by) => {
      const index = newHnswIndex(m.dim, m.folder.index, m.dtype, ef);
      index.view(files.get(by)!.path);
      return [by, index] as const;
    }),
  );
  const search = (by: (typeof layouts)[number], q: number) => indexes.get(by)!.search(queries.subarray(q * m.dim, (q + 1) * m.dim), K, 1) as unknown as { keys: BigUint64Array };

  // each query's best time over the rounds, per layout; one warm-up pass pages both files in
  const best = new Map(layouts.map((by) => [by, new Float64Array(count).fill(Number.POSITIVE_INFINITY)]));
  const hits = new Map(layouts.map((by) => [by, 0]));
  for (const by of layouts) {
    for (let q = 0; q < count; q++) {
      const found = search(by, q).keys;
      const want = new Set(truth[q]);
      for (const key of found) if (want.has(Number(key))) hits.set(by, hits.get(by)! + 1);
    }
  }
  for (let round = 0; round < flags.rounds; round++) {
    log(`round ${round + 1} of ${flags.rounds} ...`);
    for (const by of layouts) {
      const times = best.get(by)!;
      for (let q = 0; q < count; q++) {
        const t0 = performance.now();
        search(by, q);
        times[q] = Math.min(times[q], performance.now() - t0);
      }
    }
  }

  const f = (x: number, digits = 3) => x.toFixed(digits);
  console.log(`HNSW layout at ${m.folder.rows} pairs (${m.dtype}, M = ${m.folder.index.connectivity}, ef ${ef}), ${count} queries one at a time, raw usearch on a mapped view, best of ${flags.rounds} alternating rounds per query; load average ${loadavg().map((x) => x.toFixed(2)).join(', ')}\n`);
  console.log(`| layout | p50 ms | mean ms | QPS | recall@32 | median link span (slots) | links < ${NEAR} slots | layout s |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const by of layouts) {
    const times = [...best.get(by)!].sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / count;
    const locality = linkLocality(files.get(by)!.path, NEAR)!;
    console.log(`| ${by === 'key' ? 'key order (before)' : 'locality (now)'} | ${f(times[count >> 1])} | ${f(mean)} | ${(1000 / mean).toFixed(0)} | ${f(hits.get(by)! / (count * K), 4)} | ${locality.median} | ${f(locality.near, 3)} | ${f(files.get(by)!.layoutS, 1)} |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
