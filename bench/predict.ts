/**
 * bench:predict — where the time of one full prediction goes (embedding given, one query at a
 * time, as `Predictor.classifyEmbeddings` does it): a file KB of N generated clustered 512-d pairs,
 * the RetFormer forward graph with random weights of the default shapes (d = 64, 4 heads, 4 layers,
 * 1,000 classes, k = 32, 1 thread; latency does not depend on the weight values). Per prediction,
 * each phase is timed on its own:
 *   search     kb.search (query check, HNSW search, filtering, metadata of the k neighbours)
 *   slots      the neighbours' rows and their slots (as the Predictor lays them out)
 *   vectors    the neighbours' image and text rows: kb.halfVectors for an f16 KB (pread; the graph
 *              casts the bits), else kb.vectors (pread + decode)
 *   assemble   the rows by rank (halfRowsBySlot), or assembleInputs ([z; neighbour images], texts)
 *   forward    ForwardGraph.runHalf, or .run (feeds, ONNX Runtime session.run, outputs)
 *   output     the Prediction (softmax, top-5, attention renormalised)
 * and, separately on the same queries, the whole call through the real Predictor
 * (`Predictor.classifyEmbeddings` over a run with random weights, bench/predictor.ts: the phases
 * should add up to it) and raw usearch search on the same index file (the floor of the search
 * phase). Each phase is timed twice: wall time, and the process's CPU time (user +
 * system), which other work sharing the cores inflates much less. Prints Markdown tables;
 * progress on stderr.
 *
 *   npm run bench:predict -- [--n 4000,50000] [--queries 200] [--rounds 3] [--dtype f16] [--kb-root DIR]
 *
 * `--kb-root DIR` keeps the generated KBs in DIR/kb-<n>-<dtype> and reuses them on the next run.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { FileKnowledgeBase } from '../src/kb/file-kb.ts';
import { checksumFiles } from '../src/kb/format.ts';
import { newHnswIndex } from '../src/kb/hnsw.ts';
import { KB_DTYPES, type EmbeddedPair, type KbDtype, type Neighbour } from '../src/kb/types.ts';
import { ModelConfigSchema } from '../src/model/config.ts';
import { assembleInputs, halfRowsBySlot } from '../src/model/inputs.ts';
import { ForwardGraph } from '../src/model/onnx/session.ts';
import { initParams, paramSpecs } from '../src/model/params.ts';
import { toPrediction } from '../src/infer/predictor.ts';
import { Rng } from '../src/util/rng.ts';
import { benchPredictor } from './predictor.ts';
import { clusteredVectors, readKeptQueries } from './shared.ts';

const args = parseArgs({
  options: {
    n: { type: 'string', default: '4000,50000' },
    queries: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    dim: { type: 'string', default: '512' },
    clusters: { type: 'string', default: '1000' },
    classes: { type: 'string', default: '1000' },
    dtype: { type: 'string', default: 'f16' },
    threads: { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
    'kb-root': { type: 'string' },
    // profile the KBs a `bench:scale --keep DIR` run left (DIR/kb-small, DIR/kb) with its queries
    reuse: { type: 'string' },
  },
  strict: true,
}).values;
const cfg = z
  .object({
    n: z.string().transform((s) => s.split(',').map((x) => z.coerce.number().int().min(100).parse(x))),
    queries: z.coerce.number().int().min(10),
    rounds: z.coerce.number().int().min(1),
    dim: z.coerce.number().int().min(2),
    clusters: z.coerce.number().int().min(1),
    classes: z.coerce.number().int().min(2),
    dtype: z.enum(KB_DTYPES),
    threads: z.coerce.number().int().min(1),
    seed: z.coerce.number().int(),
  })
  .parse(args);
const { dim } = cfg;
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const encoder = { kind: 'bench', id: 'bench-synthetic', dim };

const rng = new Rng(cfg.seed);
const centres = new Float32Array(cfg.clusters * dim);
for (let i = 0; i < centres.length; i++) centres[i] = rng.normal() / Math.sqrt(dim);
/** The queries a bench:scale --keep folder holds ([q, dim]), or held-out clustered queries. */
function loadQueries(): Float32Array {
  if (args.reuse === undefined) return clusteredVectors(cfg.queries, dim, centres, new Rng(cfg.seed + 7));
  const all = readKeptQueries(args.reuse).queries;
  return all.subarray(0, Math.min(all.length, cfg.queries * dim));
}
const queries = loadQueries(); // [q, dim]
const queryCount = queries.length / dim;
const q1 = (q: number) => queries.subarray(q * dim, (q + 1) * dim);

/** A KB of n clustered pairs (labels c<cluster-ish>, realistic metadata lines), built through the KB writer. */
async function buildKb(dir: string, n: number, dtype: KbDtype): Promise<void> {
  const r = new Rng(cfg.seed + n);
  const kb = await FileKnowledgeBase.create(dir, { encoder, encoderChecksum: checksumFiles(new Map()), encoderFiles: new Map(), dim, dtype });
  const w = await kb.beginWrite({ allowNewLabels: true, indexThreads: 0 });
  const batch = 5000;
  for (let s = 0; s < n; s += batch) {
    const count = Math.min(batch, n - s);
    const images = clusteredVectors(count, dim, centres, r); // [count, dim]
    const texts = clusteredVectors(count, dim, centres, r); // [count, dim]
    const pairs: EmbeddedPair[] = [];
    for (let i = 0; i < count; i++) {
      const id = s + i;
      pairs.push({
        meta: { id: `p${id}`, text: `a synthetic picture, number ${id}`, source: `images/${String(id).padStart(8, '0')}.jpg`, label: `c${id % cfg.classes}` },
        imageVector: images.subarray(i * dim, (i + 1) * dim),
        textVector: texts.subarray(i * dim, (i + 1) * dim),
      });
    }
    await w.append(pairs);
  }
  await w.commit();
  await kb.close();
}

const PHASES = ['search', 'slots', 'vectors', 'assemble', 'forward', 'output'] as const;
type Phase = (typeof PHASES)[number];

const config = ModelConfigSchema.parse({});
const dims = { inputDim: dim, classes: cfg.classes };
const classNames = Array.from({ length: cfg.classes }, (_, c) => `c${c}`);
const forward = new ForwardGraph(config, dims, initParams(paramSpecs(config, dims), 0), { threads: cfg.threads });
const { k } = config;

interface SizeResult {
  n: number;
  /** Wall ms per phase and in total, one entry per prediction. */
  phases: Map<Phase, number[]>;
  total: number[];
  /** CPU ms (user + system of this process) per phase and in total: what the cores' other users cannot inflate. */
  cpuPhases: Map<Phase, number[]>;
  cpuTotal: number[];
  raw: number[];
  /** Wall ms of Predictor.classifyEmbeddings per prediction (the whole call, run after the phases). */
  whole: number[];
}

/** CPU time of this process so far, ms (user + system). */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function measure(dir: string, n: number): Promise<SizeResult> {
  const kb = await FileKnowledgeBase.open(dir);
  const phases = new Map<Phase, number[]>(PHASES.map((p) => [p, []]));
  const cpuPhases = new Map<Phase, number[]>(PHASES.map((p) => [p, []]));
  const total: number[] = [];
  const cpuTotal: number[] = [];
  const c = new Float64Array(PHASES.length + 1); // CPU ms at each mark
  const one = async (q: number, record: boolean) => {
    const z1 = q1(q);
    c[0] = cpuMs();
    const t0 = performance.now();
    const [found] = await kb.search(z1, { k, queryEncoderId: kb.encoderId, modality: 'image' });
    const t1 = performance.now();
    c[1] = cpuMs();
    const neighbours: Neighbour[] = found.slice(0, k);
    const rows = [...new Set(neighbours.map((nb) => nb.row))];
    const slotOf = new Map(rows.map((r, i) => [r, i]));
    const slots = new Int32Array(k).fill(-1); // [1, k]
    neighbours.forEach((nb, j) => {
      slots[j] = slotOf.get(nb.row)!;
    });
    const t2 = performance.now();
    c[2] = cpuMs();
    // as the Predictor does it: an f16 KB's stored bits go to the graph as they are, other dtypes are decoded
    const images16 = await kb.halfVectors(rows, 'image'); // [rows, dim] f16 bits, or undefined
    const texts16 = await kb.halfVectors(rows, 'text');
    const images = images16 ? undefined : await kb.vectors(rows, 'image'); // [rows, dim]
    const texts = texts16 ? undefined : await kb.vectors(rows, 'text');
    const t3 = performance.now();
    c[3] = cpuMs();
    const half = images16 && texts16 ? { n: 1, query: z1, neighbourImages: halfRowsBySlot(images16, slots, dim), neighbourTexts: halfRowsBySlot(texts16, slots, dim) } : undefined;
    const batch = half ? undefined : assembleInputs(z1, 1, dim, k, slots, { images: images!, texts: texts! });
    const t4 = performance.now();
    c[4] = cpuMs();
    const out = half ? await forward.runHalf(half) : await forward.run(batch!);
    const t5 = performance.now();
    c[5] = cpuMs();
    toPrediction(out, 0, cfg.classes, k, neighbours, classNames, 5);
    const t6 = performance.now();
    c[6] = cpuMs();
    if (!record) return;
    const marks = [t0, t1, t2, t3, t4, t5, t6];
    for (const [i, p] of PHASES.entries()) {
      phases.get(p)!.push(marks[i + 1] - marks[i]);
      cpuPhases.get(p)!.push(c[i + 1] - c[i]);
    }
    total.push(t6 - t0);
    cpuTotal.push(c[6] - c[0]);
  };
  for (let q = 0; q < Math.min(50, queryCount); q++) await one(q, false); // warm-up: sessions, mapped pages, JIT
  for (let round = 0; round < cfg.rounds; round++) for (let q = 0; q < queryCount; q++) await one(q, true);
  const ef = kb.defaultEf; // the ef kb.search used

  // the same predictions through the real Predictor (its own forward graph, same default shapes): the phases above must add up to it
  const { predictor, close } = await benchPredictor(kb, { classes: cfg.classes });
  const whole: number[] = [];
  for (let q = 0; q < Math.min(50, queryCount); q++) await predictor.classifyEmbeddings(q1(q));
  for (let round = 0; round < cfg.rounds; round++) {
    for (let q = 0; q < queryCount; q++) {
      const s = performance.now();
      await predictor.classifyEmbeddings(q1(q));
      whole.push(performance.now() - s);
    }
  }
  await close();
  await kb.close();

  // the floor of the search phase: raw usearch on the same index file, same ef, one thread
  const m = kb.manifest;
  const index = newHnswIndex(dim, m.folder.index, m.dtype, ef);
  index.view(join(dir, m.folder.files.imageIndex));
  const raw: number[] = [];
  for (let q = 0; q < Math.min(50, queryCount); q++) index.search(q1(q), k, 1);
  for (let round = 0; round < cfg.rounds; round++) {
    for (let q = 0; q < queryCount; q++) {
      const s = performance.now();
      index.search(q1(q), k, 1);
      raw.push(performance.now() - s);
    }
  }
  return { n, phases, total, cpuPhases, cpuTotal, raw, whole };
}

/** The KBs to profile: a bench:scale --keep folder's two, or generated ones under the root. */
function sizes(): { n: number; dir: string }[] {
  if (args.reuse === undefined) return cfg.n.map((n) => ({ n, dir: join(root, `kb-${n}-${cfg.dtype}`) }));
  const kept = JSON.parse(readFileSync(join(args.reuse, 'bench.json'), 'utf8')) as { n: number; small: number };
  return [
    { n: kept.small, dir: join(args.reuse, 'kb-small') },
    { n: kept.n, dir: join(args.reuse, 'kb') },
  ];
}

const root = args['kb-root'] ?? mkdtempSync(join(tmpdir(), 'retformer-bench-predict-'));
const results: SizeResult[] = [];
const loadBefore = loadavg();
try {
  for (const { n, dir } of sizes()) {
    if (!existsSync(dir)) {
      log(`building a ${cfg.dtype} KB of ${n} pairs in ${dir} ...`);
      const t = performance.now();
      await buildKb(dir, n, cfg.dtype);
      log(`  ${((performance.now() - t) / 1000).toFixed(1)} s`);
    } else log(`reusing ${dir}`);
    log(`timing ${cfg.rounds} x ${queryCount} predictions at ${n} pairs ...`);
    results.push(await measure(dir, n));
  }
} finally {
  await forward.release();
  if (args['kb-root'] === undefined) rmSync(root, { recursive: true, force: true });
}
const loadAfter = loadavg();

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) => {
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ms = (x: number) => x.toFixed(3);
const out: string[] = [];
out.push(`bench:predict — one prediction at a time, embedding given: ${cfg.dtype} file KB of clustered ${dim}-d pairs, k = ${k}, forward d = ${config.width}, ${config.heads} heads, ${config.layers} layers, ${cfg.classes} classes, random weights, ${cfg.threads} ORT thread(s); ${cfg.rounds} x ${queryCount} predictions per size; load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${loadAfter.map((x) => x.toFixed(2)).join(' ')} after`);
out.push('');
const head = results.map((r) => `${r.n} pairs: p50 | mean | p99`).join(' | ');
out.push(`| phase (ms) | ${head} |`);
out.push(`|---|${results.map(() => '---:|---:|---:|').join('')}`);
for (const p of PHASES) out.push(`| ${p} | ${results.map((r) => `${ms(pct(r.phases.get(p)!, 0.5))} | ${ms(mean(r.phases.get(p)!))} | ${ms(pct(r.phases.get(p)!, 0.99))}`).join(' | ')} |`);
out.push(`| **total** | ${results.map((r) => `**${ms(pct(r.total, 0.5))}** | **${ms(mean(r.total))}** | **${ms(pct(r.total, 0.99))}**`).join(' | ')} |`);
out.push(`| Predictor.classifyEmbeddings (the whole call, separately) | ${results.map((r) => `${ms(pct(r.whole, 0.5))} | ${ms(mean(r.whole))} | ${ms(pct(r.whole, 0.99))}`).join(' | ')} |`);
out.push(`| raw usearch search (same index, separately) | ${results.map((r) => `${ms(pct(r.raw, 0.5))} | ${ms(mean(r.raw))} | ${ms(pct(r.raw, 0.99))}`).join(' | ')} |`);
out.push(`| total minus search | ${results.map((r) => `${ms(pct(r.total.map((t, i) => t - r.phases.get('search')![i]), 0.5))} | ${ms(mean(r.total) - mean(r.phases.get('search')!))} | ${ms(pct(r.total.map((t, i) => t - r.phases.get('search')![i]), 0.99))}`).join(' | ')} |`);
out.push('');
out.push('CPU time of the process per phase (user + system, ms; includes ~1 µs per mark for reading it):');
out.push('');
out.push(`| phase (CPU ms) | ${results.map((r) => `${r.n} pairs: p50 | mean`).join(' | ')} |`);
out.push(`|---|${results.map(() => '---:|---:|').join('')}`);
for (const p of PHASES) out.push(`| ${p} | ${results.map((r) => `${ms(pct(r.cpuPhases.get(p)!, 0.5))} | ${ms(mean(r.cpuPhases.get(p)!))}`).join(' | ')} |`);
out.push(`| **total** | ${results.map((r) => `**${ms(pct(r.cpuTotal, 0.5))}** | **${ms(mean(r.cpuTotal))}**`).join(' | ')} |`);
out.push(`| total minus search | ${results.map((r) => `${ms(pct(r.cpuTotal.map((t, i) => t - r.cpuPhases.get('search')![i]), 0.5))} | ${ms(mean(r.cpuTotal) - mean(r.cpuPhases.get('search')!))}`).join(' | ')} |`);
process.stdout.write(`${out.join('\n')}\n`);
