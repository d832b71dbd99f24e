/**
 * bench:scale — a KB of N generated clustered pairs (default 1,000,000 x 512-d) arriving the way
 * large KBs arrive: as clip-retrieval parts (f16 .npy + Parquet metadata), imported with
 * `kb import`. Measures, in one run:
 *   - import time and peak RSS (each import runs in its own process; RSS = its maxRSS), per dtype;
 *     the import includes building both HNSW indexes, so it is also the build time per dtype;
 *     plus the time to read and check the parts alone (no KB);
 *   - bytes per pair on disk, per dtype;
 *   - recall@32 against exact search and QPS at one thread (one query at a time), per dtype,
 *     through our API (`kb.search`) and through raw usearch on the same index file;
 *   - p50/p99 of a full prediction with the embedding given, through the real
 *     `Predictor.classifyEmbeddings` (bench/predictor.ts): retrieval (k = 32) + fetching the
 *     neighbours' image and text vectors + the RetFormer forward graph (MLP branch and
 *     cross-fusion, ONNX Runtime, 1 thread) + softmax and top classes, at N pairs and at 4,000
 *     pairs. The run has randomly initialised weights of the default shapes (d = 64, 4 heads, 4
 *     layers, 1,000 classes): its latency does not depend on the weight values.
 * Prints Markdown tables (stdout); progress on stderr.
 *   npm run bench:scale -- --n 200000
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { writeTinyClip } from '../scripts/tiny-clip/index.ts';
import { DEFAULT_TINY_CLIP_SIZES } from '../scripts/tiny-clip/model.ts';
import { ClipRetrievalWriter } from '../src/kb/interop/clip-retrieval-writer.ts';
import { readClipRetrievalPairs, scanClipRetrieval } from '../src/kb/interop/clip-retrieval.ts';
import { importClipRetrieval } from '../src/kb/interop/import.ts';
import { connectivityFor, DEFAULT_INDEX_PARAMS, type FileKbManifest, manifestDefaultEf } from '../src/kb/format.ts';
import { newHnswIndex } from '../src/kb/hnsw.ts';
import { openKnowledgeBaseSpec } from '../src/kb/registry.ts';
import { KB_DTYPES, type KbDtype, type PairMeta, type WritableKnowledgeBase } from '../src/kb/types.ts';
import { ModelConfigSchema } from '../src/model/config.ts';
import { Rng } from '../src/util/rng.ts';
import { benchPredictor } from './predictor.ts';
import { exactTopK, scaleData } from './scale-data.ts';
import { intFlag, listFlag, parseBenchFlags } from './flags.ts';
import { bestOfAlternating, readKeptQueries } from './shared.ts';

const flags = parseBenchFlags({
  n: { default: '1000000', value: intFlag(1000) },
  small: { default: '4000', value: intFlag(100) },
  queries: { default: '300', value: intFlag(10) },
  dim: { default: '512', value: intFlag(2) },
  clusters: { default: '1000', value: intFlag(1) },
  dtypes: { default: 'f32,f16,i8', value: listFlag(z.enum(KB_DTYPES)) },
  'part-size': { default: '100000', value: intFlag(1) },
  threads: { default: '0', value: intFlag(0) },
  seed: { default: '1', value: intFlag() },
  work: { value: z.string().optional() },
  // '' = only the default ef
  ef: { default: '96,128,192,256,384', value: z.string().transform((s) => (s === '' ? [] : s.split(',').map((e) => intFlag(1).parse(e)))) },
  // leave the predict-dtype KB, the small KB, the queries and the exact truth at DIR (for --reuse)
  keep: { value: z.string().optional() },
  // time search + full prediction on a folder a --keep run left (no generation, no import)
  reuse: { value: z.string().optional() },
  // internal: run one import (or one read-only pass) in this process and print its time and maxRSS as JSON
  child: { value: z.enum(['import', 'read']).optional() },
  dir: { value: z.string().optional() },
  out: { value: z.string().optional() },
  encoder: { value: z.string().optional() },
  dtype: { value: z.enum(KB_DTYPES).optional() },
});

const log = (msg: string) => process.stderr.write(`${msg}\n`);
const K = 32;

// ---- child modes: one import (or one read-only pass) in a fresh process, for its peak RSS -------
if (flags.child !== undefined) {
  const t = performance.now();
  let rows = 0;
  if (flags.child === 'import') {
    const phases: Record<string, number> = {};
    const onProgress = (p: { phase: string }) => {
      phases[p.phase] ??= (performance.now() - t) / 1000; // when each indexing phase began
    };
    const m = await importClipRetrieval({ dir: flags.dir!, out: flags.out!, encoderSpec: flags.encoder!, dtype: flags.dtype!, indexThreads: flags.threads, quiet: true, onProgress });
    rows = m.count;
    process.stderr.write(`  import phases began at (s): ${JSON.stringify(phases)}\n`);
  } else {
    for await (const b of readClipRetrievalPairs(await scanClipRetrieval(flags.dir!))) rows += b.pairs.length;
  }
  process.stdout.write(`${JSON.stringify({ rows, seconds: (performance.now() - t) / 1000, maxRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`);
  process.exit(0);
}

const f = (x: number, d = 0) => x.toFixed(d);

/** What a --keep folder holds besides its two KBs: enough to time the same queries again. */
interface KeptRun {
  n: number;
  small: number;
  dim: number;
  clusters: number;
  seed: number;
  dtype: KbDtype;
  queries: number;
  load: string;
}

interface SearchRow {
  ef: number | undefined;
  kbRecall: number;
  rawRecall: number;
  kbQps: number;
  rawQps: number;
}

/** recall@32 and one-query-at-a-time QPS, through kb.search and through raw usearch on the same index file, at one ef (undefined = the KB's default). */
async function searchBench(kb: WritableKnowledgeBase, kbDir: string, queries: Float32Array, truth: number[][], ef: number | undefined): Promise<SearchRow> {
  const dim = kb.dim;
  const count = queries.length / dim;
  const q1 = (q: number) => queries.subarray(q * dim, (q + 1) * dim);
  const truthSets = truth.map((keys) => new Set(keys));
  const recallOf = (found: number[][]) => found.reduce((acc, rows, q) => acc + rows.filter((r) => truthSets[q].has(r)).length / K, 0) / found.length;
  const m = kb.manifest as FileKbManifest;
  const rawEf = ef ?? manifestDefaultEf(m);
  const raw = newHnswIndex(dim, m.folder.index, m.dtype, rawEf);
  raw.view(join(kbDir, m.folder.files.imageIndex));
  const runRaw = () => Array.from({ length: count }, (_, q) => Array.from((raw.search(q1(q), K, 1) as unknown as { keys: BigUint64Array }).keys, Number));
  const runKb = async () => {
    const out: number[][] = [];
    for (let q = 0; q < count; q++) out.push((await kb.search(q1(q), { k: K, queryEncoderId: kb.encoderId, ef }))[0].map((nb) => nb.row));
    return out;
  };
  const rawFound = runRaw(); // warm-up pages the mapped index in
  const kbFound = await runKb();
  const best = await bestOfAlternating({ raw: runRaw, kb: runKb });
  return { ef: rawEf, kbRecall: recallOf(kbFound), rawRecall: recallOf(rawFound), kbQps: (count / best.kb) * 1000, rawQps: (count / best.raw) * 1000 };
}

/** The default ef, then every ef of --ef, on one KB. */
async function searchSweep(kbDir: string, queries: Float32Array, truth: number[][]): Promise<{ atDefault: SearchRow; perEf: SearchRow[] }> {
  const kb = await openKnowledgeBaseSpec(kbDir);
  try {
    const atDefault = await searchBench(kb, kbDir, queries, truth, undefined);
    log(`  default ef ${atDefault.ef}: recall@32 ${atDefault.kbRecall.toFixed(4)} (raw ${atDefault.rawRecall.toFixed(4)}), ${atDefault.kbQps.toFixed(0)} QPS (raw ${atDefault.rawQps.toFixed(0)})`);
    const perEf: SearchRow[] = [];
    for (const ef of flags.ef) {
      const r = await searchBench(kb, kbDir, queries, truth, ef);
      log(`  ef ${ef}: recall@32 ${r.kbRecall.toFixed(4)} (raw ${r.rawRecall.toFixed(4)}), ${r.kbQps.toFixed(0)} QPS (raw ${r.rawQps.toFixed(0)})`);
      perEf.push(r);
    }
    return { atDefault, perEf };
  } finally {
    await kb.close();
  }
}

function efTable(dtype: KbDtype, sweep: { atDefault: SearchRow; perEf: SearchRow[] }): string[] {
  const out = ['| dtype | ef | recall@32 (KB) | recall@32 (raw usearch) | QPS KB (1 thread) | QPS raw usearch | KB / raw |', '|---|---:|---:|---:|---:|---:|---:|'];
  const rowOf = (r: SearchRow, name: string) => `| ${dtype} | ${name} | ${r.kbRecall.toFixed(4)} | ${r.rawRecall.toFixed(4)} | ${f(r.kbQps)} | ${f(r.rawQps)} | ${(r.kbQps / r.rawQps).toFixed(2)} |`;
  out.push(rowOf(sweep.atDefault, `default (${sweep.atDefault.ef})`));
  for (const r of sweep.perEf) out.push(rowOf(r, String(r.ef)));
  return out;
}

// ---- full prediction latency: Predictor.classifyEmbeddings (retrieval + neighbour vectors + forward graph + output) ----
const config = ModelConfigSchema.parse({});
const PREDICT_CLASSES = 1000;

async function predictLatency(kbDir: string, queries: Float32Array): Promise<{ p50: number; p99: number; mean: number; cpuP50: number }> {
  const kb = await openKnowledgeBaseSpec(kbDir);
  const { predictor, close } = await benchPredictor(kb, { classes: PREDICT_CLASSES });
  const dim = kb.dim;
  const count = queries.length / dim;
  const one = (q: number) => predictor.classifyEmbeddings(queries.subarray(q * dim, (q + 1) * dim));
  for (let q = 0; q < Math.min(50, count); q++) await one(q); // warm-up: sessions, mapped pages
  const times: number[] = [];
  const cpu: number[] = []; // CPU ms of this process per prediction (user + system): less inflated by other work on the cores
  for (let round = 0; round < 2; round++) {
    for (let q = 0; q < count; q++) {
      const c = process.cpuUsage();
      const s = performance.now();
      await one(q);
      times.push(performance.now() - s);
      const used = process.cpuUsage(c);
      cpu.push((used.user + used.system) / 1000);
    }
  }
  await close();
  await kb.close();
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  cpu.sort((a, b) => a - b);
  return { p50: at(0.5), p99: at(0.99), mean: times.reduce((a, b) => a + b, 0) / times.length, cpuP50: cpu[Math.floor(cpu.length / 2)] };
}

async function predictTable(bigDir: string, smallDir: string, n: number, small: number, dim: number, dtype: KbDtype, queries: Float32Array): Promise<string[]> {
  log(`prediction latency at ${n} and ${small} pairs (${dtype} KBs) ...`);
  const big = await predictLatency(bigDir, queries);
  const little = await predictLatency(smallDir, queries);
  return [
    `Full prediction, embedding given (Predictor.classifyEmbeddings: retrieval k = ${config.k} at the default ef + neighbour vectors + forward graph + softmax and top classes; d = ${config.width}, ${config.heads} heads, ${config.layers} layers, ${PREDICT_CLASSES} classes, random weights, 1 thread), ${dtype} KB, ${(2 * queries.length) / dim} predictions:`,
    '',
    '| KB pairs | p50 (ms) | p99 (ms) | mean (ms) | CPU p50 (ms) |',
    '|---:|---:|---:|---:|---:|',
    `| ${small} | ${little.p50.toFixed(2)} | ${little.p99.toFixed(2)} | ${little.mean.toFixed(2)} | ${little.cpuP50.toFixed(2)} |`,
    `| ${n} | ${big.p50.toFixed(2)} | ${big.p99.toFixed(2)} | ${big.mean.toFixed(2)} | ${big.cpuP50.toFixed(2)} |`,
  ];
}

const loadAverage = () => loadavg().map((x) => x.toFixed(2)).join(', ');

if (flags.reuse !== undefined) {
  // ---- --reuse DIR: search + prediction timings on the KBs a --keep run left ---------------------
  const dir = resolve(flags.reuse);
  const kept = JSON.parse(readFileSync(join(dir, 'bench.json'), 'utf8')) as KeptRun;
  const { queries, truth } = readKeptQueries(dir);
  const loadBefore = loadAverage();
  log(`search at ${kept.n} pairs (${kept.dtype}), ${truth.length} queries ...`);
  const sweep = await searchSweep(join(dir, 'kb'), queries, truth);
  const predict = await predictTable(join(dir, 'kb'), join(dir, 'kb-small'), kept.n, kept.small, kept.dim, kept.dtype, queries);
  const out = [
    `bench:scale --reuse ${dir} — the ${kept.n}-pair ${kept.dtype} KB a --keep run left (built with load average ${kept.load}); ${truth.length} queries, k = ${K}; load average now ${loadBefore} -> ${loadAverage()}`,
    '',
    ...efTable(kept.dtype, sweep),
    '',
    ...predict,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  process.exit(0);
}

const { n, dim } = flags;
const work = resolve(flags.work ?? mkdtempSync(join(tmpdir(), 'retformer-bench-scale-')));
mkdirSync(work, { recursive: true });
log(`work folder ${work}`);
const loadAtStart = loadAverage();

// ---- data: clustered unit vectors; text = its image's direction plus noise; queries held out ----
const data = scaleData(flags.seed, flags.clusters, dim);
const generate = data.generate;

const clipDir = join(work, 'clip');
const encoderDir = join(work, 'encoder');
log(`tiny CLIP encoder with projection_dim ${dim} (names the vectors' encoder; nothing is embedded with it)`);
writeTinyClip(encoderDir, { sizes: { ...DEFAULT_TINY_CLIP_SIZES, projectionDim: dim } });
const encoderSpec = `onnx:${encoderDir}`;

log(`writing ${n} pairs as clip-retrieval parts of ${flags['part-size']} (f16 .npy + Parquet) ...`);
let t = performance.now();
{
  const writer = new ClipRetrievalWriter(clipDir, { dim, dtype: 'f2', partSize: flags['part-size'], totalRows: n, label: true, extras: [{ name: 'url', type: 'STRING' }], idColumn: false });
  const r = new Rng(flags.seed + 1);
  const batch = 8192;
  for (let s = 0; s < n; s += batch) {
    const count = Math.min(batch, n - s);
    const g = generate(count, r);
    const metas: PairMeta[] = Array.from({ length: count }, (_, i) => ({
      id: String(s + i),
      text: `a synthetic picture of cluster ${g.cluster[i]}, number ${s + i}`,
      source: `images/${String(s + i).padStart(8, '0')}.jpg`,
      label: `c${g.cluster[i]}`,
      extra: { url: `https://example.test/${s + i}.jpg` },
    }));
    await writer.append(metas, g.image, g.text);
  }
  await writer.close();
}
const writeS = (performance.now() - t) / 1000;
const queries = data.queries(flags.queries); // [q, dim]
log(`  ${writeS.toFixed(1)} s`);

// ---- exact ground truth over the stored (f16-widened) image vectors, block by block ------------
log('exact top-32 of every query (usearch exactSearch, block by block) ...');
t = performance.now();
const truth = await exactTopK(clipDir, queries, dim, K);
log(`  ${((performance.now() - t) / 1000).toFixed(1)} s`);

// ---- imports, each in its own process (its maxRSS is the import's peak) -------------------------
const self = resolve('bench/scale.ts');
function child(mode: string, extra: string[]): { rows: number; seconds: number; maxRssMiB: number } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--child', mode, '--threads', String(flags.threads), ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

log('read and check every part without writing a KB ...');
const readOnly = child('read', ['--dir', clipDir]);
log(`  ${readOnly.seconds.toFixed(1)} s, maxRSS ${readOnly.maxRssMiB.toFixed(0)} MiB`);

function duBytes(p: string): number {
  const st = statSync(p);
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((s, name) => s + duBytes(join(p, name)), 0);
}

interface DtypeRow {
  dtype: KbDtype;
  importS: number;
  rssMiB: number;
  bytesPerPair: number;
  load: string;
  sweep: { atDefault: SearchRow; perEf: SearchRow[] };
}
/** A KB of the first `small` rows, then prediction latency on it and on the big KB of `predictDtype`. */
async function predictAtBothSizes(bigKbDir: string): Promise<{ smallImport: ReturnType<typeof child>; smallKbDir: string; lines: string[] }> {
  // ---- the small KB (first `small` rows) for the prediction latency comparison --------------------
  const smallClip = join(work, 'clip-small');
  {
    log(`a ${flags.small}-pair KB from the first rows ...`);
    const scan = await scanClipRetrieval(clipDir);
    const writer = new ClipRetrievalWriter(smallClip, { dim, dtype: 'f2', partSize: flags.small, totalRows: flags.small, label: true, extras: [{ name: 'url', type: 'STRING' }], idColumn: false });
    let done = 0;
    for await (const b of readClipRetrievalPairs(scan, { batchSize: 1000 })) {
      const take = b.pairs.slice(0, flags.small - done);
      const image = new Float32Array(take.length * dim);
      const text = new Float32Array(take.length * dim);
      take.forEach((p, i) => {
        image.set(p.imageVector, i * dim);
        text.set(p.textVector, i * dim);
      });
      await writer.append(
        take.map((p) => p.meta),
        image,
        text,
      );
      done += take.length;
      if (done >= flags.small) break;
    }
    await writer.close();
  }
  const smallKbDir = join(work, `kb-small-${predictDtype}`);
  rmSync(smallKbDir, { recursive: true, force: true });
  const smallImport = child('import', ['--dir', smallClip, '--out', smallKbDir, '--encoder', encoderSpec, '--dtype', predictDtype]);
  return { smallImport, smallKbDir, lines: await predictTable(bigKbDir, smallKbDir, n, flags.small, dim, predictDtype, queries) };
}

// the prediction dtype first: its prediction figures and the --keep folder exist even if a later dtype is cut short
const predictDtype: KbDtype = flags.dtypes.includes('f16') ? 'f16' : flags.dtypes[0];
const dtypeOrder = [predictDtype, ...flags.dtypes.filter((d) => d !== predictDtype)];
let predicted: Awaited<ReturnType<typeof predictAtBothSizes>> | undefined;
const rows: DtypeRow[] = [];
const kbDirs = new Map<KbDtype, string>();
for (const dtype of dtypeOrder) {
  const kbDir = join(work, `kb-${dtype}`);
  rmSync(kbDir, { recursive: true, force: true });
  log(`import ${n} pairs into a ${dtype} KB (${flags.threads === 0 ? 'all cores' : `${flags.threads} thread(s)`} for HNSW inserts) ...`);
  const imp = child('import', ['--dir', clipDir, '--out', kbDir, '--encoder', encoderSpec, '--dtype', dtype]);
  const load = loadAverage();
  log(`  ${imp.seconds.toFixed(1)} s, maxRSS ${imp.maxRssMiB.toFixed(0)} MiB, load average ${load}`);
  kbDirs.set(dtype, kbDir);
  const sweep = await searchSweep(kbDir, queries, truth);
  rows.push({ dtype, importS: imp.seconds, rssMiB: imp.maxRssMiB, bytesPerPair: duBytes(kbDir) / n, load, sweep });
  if (dtype === predictDtype) {
    predicted = await predictAtBothSizes(kbDir);
    log(predicted.lines.join('\n'));
    if (flags.keep !== undefined) keepFolder(resolve(flags.keep), kbDir, predicted.smallKbDir, load);
  }
}
const { smallImport, lines: predict } = predicted!;

// ---- report --------------------------------------------------------------------------------------
const out: string[] = [];
out.push(`bench:scale — ${n} clustered ${dim}-d pairs (${flags.clusters} clusters) in clip-retrieval parts of ${flags['part-size']} (f16 .npy + Parquet), ${flags.queries} held-out queries, k = ${K}, HNSW M${connectivityFor({ expectedRows: n })} (the default for a KB created with ${n} pairs) efC${DEFAULT_INDEX_PARAMS.expansionAdd}, ${flags.threads === 0 ? 'all cores' : `${flags.threads} thread(s)`} for HNSW inserts; load average at start ${loadAtStart}, at the end ${loadAverage()}`);
out.push('');
out.push(`- writing the parts: ${f(writeS, 1)} s; reading and checking them (no KB): ${f(readOnly.seconds, 1)} s (${f(n / readOnly.seconds)} pairs/s), maxRSS ${f(readOnly.maxRssMiB)} MiB`);
out.push(`- import of ${flags.small} pairs (${predictDtype}): ${f(smallImport.seconds, 1)} s, maxRSS ${f(smallImport.maxRssMiB)} MiB`);
out.push('');
out.push('| dtype | import + HNSW build (s) | pairs/s | import maxRSS (MiB) | bytes / pair | default ef | recall@32 (KB) | recall@32 (raw usearch) | QPS KB (1 thread) | QPS raw usearch | KB / raw | load average after import |');
out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
for (const r of rows) {
  const s = r.sweep.atDefault;
  out.push(`| ${r.dtype} | ${f(r.importS, 1)} | ${f(n / r.importS)} | ${f(r.rssMiB)} | ${f(r.bytesPerPair)} | ${s.ef} | ${s.kbRecall.toFixed(4)} | ${s.rawRecall.toFixed(4)} | ${f(s.kbQps)} | ${f(s.rawQps)} | ${(s.kbQps / s.rawQps).toFixed(2)} | ${r.load} |`);
}
const f32 = rows.find((r) => r.dtype === 'f32');
const i8 = rows.find((r) => r.dtype === 'i8');
if (f32 && i8) {
  out.push('');
  out.push(`- i8 / f32 bytes: ${(i8.bytesPerPair / f32.bytesPerPair).toFixed(3)} (target <= 0.333); recall@32 loss ${(100 * (f32.sweep.atDefault.kbRecall - i8.sweep.atDefault.kbRecall)).toFixed(2)} points (target <= 2)`);
}
out.push('');
out.push('Recall@32 and QPS per ef (one query at a time):');
out.push('');
for (const r of rows) out.push(...efTable(r.dtype, r.sweep), '');
out.push(...predict);
process.stdout.write(`${out.join('\n')}\n`);

if (flags.work === undefined) rmSync(work, { recursive: true, force: true });

/** Leave the big and the small KB, the queries and the exact truth at `keep`, for --reuse. */
function keepFolder(keep: string, bigKbDir: string, smallKbDir: string, load: string): void {
  rmSync(keep, { recursive: true, force: true });
  mkdirSync(keep, { recursive: true });
  moveFolder(bigKbDir, join(keep, 'kb'));
  moveFolder(smallKbDir, join(keep, 'kb-small'));
  writeFileSync(join(keep, 'queries.f32'), new Uint8Array(queries.buffer, queries.byteOffset, queries.byteLength));
  writeFileSync(join(keep, 'truth.json'), JSON.stringify(truth));
  const kept: KeptRun = { n, small: flags.small, dim, clusters: flags.clusters, seed: flags.seed, dtype: predictDtype, queries: flags.queries, load };
  writeFileSync(join(keep, 'bench.json'), `${JSON.stringify(kept, null, 2)}\n`);
  log(`kept the ${predictDtype} KBs, queries and exact truth at ${keep} (time them again: npm run bench:scale -- --reuse ${keep})`);
}

/** rename, or copy then delete across file systems. */
function moveFolder(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    cpSync(from, to, { recursive: true });
    rmSync(from, { recursive: true, force: true });
  }
}
