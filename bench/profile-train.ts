/**
 * Where one training step's time goes, from ONNX Runtime's kernel profiler, and what that means
 * for the target "training at >= 50% of the machine's measured MatMul rate".
 *   node --import tsx bench/profile-train.ts [--width 64] [--heads 4] [--steps 6] [--threads 1]
 * Prints Markdown: kernel time per operator type (and the in-graph GFLOP/s of the products,
 * from the shapes the profiler records), then the model's FLOPs per step (the analytic count
 * `bench/train.ts` uses) against the products actually executed, the achieved ratio, and two
 * ceilings: the ratio if only the products ran, at their in-graph rates, and the time every other
 * operator would have to fit in for the ratio to reach 50%.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ModelConfigSchema } from '../src/model/config.ts';
import { TrainGraph } from '../src/model/onnx/session.ts';
import { initParams, paramSpecs } from '../src/model/params.ts';
import { BENCH_DIMS, MICRO_BATCH, ortMatmulRate, randomBatch, trainFlops } from './shared.ts';

const { values: flags } = parseArgs({
  options: {
    width: { type: 'string', default: '64' },
    heads: { type: 'string', default: '4' },
    steps: { type: 'string', default: '6' },
    threads: { type: 'string', default: '1' },
  },
});
const config = ModelConfigSchema.parse({ width: Number(flags.width), heads: Number(flags.heads) });
const steps = Number(flags.steps);
const threads = Number(flags.threads);
if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps: ${flags.steps} is not a positive integer`);
if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads: ${flags.threads} is not a positive integer`);

const { D, C } = BENCH_DIMS;
const n = MICRO_BATCH;
const T = n * (config.k + 1);

/** One event of ONNX Runtime's profile (Chrome trace format); durations and times in µs. */
interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string; input_type_shape?: Record<string, number[]>[]; output_type_shape?: Record<string, number[]>[] };
}

const PRODUCTS = new Set(['MatMul', 'Gemm', 'FusedMatMul']);
const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
const shapeOf = (s: Record<string, number[]>[] | undefined, i: number): number[] => Object.values(s?.[i] ?? {})[0] ?? [];

/** FLOPs of one product node from its recorded shapes: output [..batch, m, n], k from A's last two dims (transposed or not). */
function productFlops(e: ProfileEvent): { flops: number; batched: boolean } {
  const out = shapeOf(e.args?.output_type_shape, 0);
  const a = shapeOf(e.args?.input_type_shape, 0);
  const m = out.at(-2) ?? 1;
  const cols = out.at(-1) ?? 1;
  const batch = size(out.slice(0, -2));
  const k = size(a.slice(-2)) / m;
  return { flops: 2 * batch * m * cols * k, batched: batch > 1 };
}

/** Train `steps` (+1 warm-up) micro-batches with the profiler on; returns the profile's events. */
async function profiledSteps(): Promise<ProfileEvent[]> {
  const dir = mkdtempSync(join(tmpdir(), 'retformer-profile-'));
  try {
    const dims = { inputDim: D, classes: C };
    const graph = new TrainGraph(config, dims, { threads, profileFilePrefix: join(dir, 'train') });
    const params = initParams(paramSpecs(config, dims), 1);
    const batch = randomBatch(n, config.k, BENCH_DIMS, 2);
    for (let s = 0; s <= steps; s++) await graph.run(params, batch, batch.targets, 1 / n);
    await graph.release();
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    if (files.length !== 1) throw new Error(`expected one profile file in ${dir}, found ${files.length}`);
    return JSON.parse(readFileSync(join(dir, files[0]), 'utf8')) as ProfileEvent[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// the reference moves between runs on these machines (110-140 GFLOP/s seen): measured before and
// after the profiled steps, and the higher rate is used, which gives the lower (conservative) ratio
const refBefore = await ortMatmulRate(T, D, 64, { reps: 20, threads });
const events = await profiledSteps();
const refAfter = await ortMatmulRate(T, D, 64, { reps: 20, threads });
const ref = Math.max(refBefore, refAfter);

// the timed runs: every model_run after the first (warm-up); kernels are attributed by time window
const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
if (runs.length !== steps + 1) throw new Error(`profile has ${runs.length} runs, expected ${steps + 1}`);
const timed = runs.slice(1);
const inTimedRun = (e: ProfileEvent) => timed.some((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur);
const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && inTimedRun(e));

interface Row {
  calls: number;
  us: number;
  /** FLOPs executed (products only; 0 for every other operator). */
  flops: number;
  product: boolean;
}
const rows = new Map<string, Row>();
for (const e of kernels) {
  const op = e.args?.op_name ?? 'unknown';
  let key = op;
  let flops = 0;
  if (PRODUCTS.has(op)) {
    const p = productFlops(e);
    key = p.batched ? 'products, batched (attention)' : 'products, 2-D (projections, MLP, their gradients)';
    flops = p.flops;
  }
  const row = rows.get(key) ?? { calls: 0, us: 0, flops: 0, product: PRODUCTS.has(op) };
  row.calls++;
  row.us += e.dur;
  row.flops += flops;
  rows.set(key, row);
}

const perStep = (x: number) => x / steps;
const sum = (rs: Row[], f: (r: Row) => number) => rs.reduce((s, r) => s + f(r), 0);
const kernelUs = sum([...rows.values()], (r) => r.us);
const productRows = [...rows.values()].filter((r) => r.product);
const productUs = sum(productRows, (r) => r.us);
const executedFlops = sum(productRows, (r) => r.flops);
const runUs = timed.reduce((s, r) => s + r.dur, 0);
const modelFlops = trainFlops(config, BENCH_DIMS).total * n;
const ms = (us: number) => (perStep(us) / 1000).toFixed(2);
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const ratio = (us: number) => modelFlops / (perStep(us) * 1e3) / ref; // FLOPs / ns = GFLOP/s, over the reference

const out = (s = '') => process.stdout.write(`${s}\n`);
out(`# Where a training step's time goes (ONNX Runtime profiler, ${threads} thread${threads > 1 ? 's' : ''})`);
out();
out(
  `Model: d=${config.width}, ${config.heads} head${config.heads > 1 ? 's' : ''}, k=${config.k}, L=${config.layers}, D=${D}, C=${C}; one forward+backward of ${n} rows, ${steps} profiled runs after a warm-up; node ${process.version}. Reference: plain MatMul at the model's largest product [${T},${D}]x[${D},64], ${refBefore.toFixed(1)} GFLOP/s before the profiled runs and ${refAfter.toFixed(1)} after; ratios use the higher.`,
);
out();
out('| kernels | calls/step | ms/step | share of kernel time | in-graph GFLOP/s |');
out('|---|---:|---:|---:|---:|');
for (const [key, r] of [...rows.entries()].sort((a, b) => b[1].us - a[1].us)) {
  if (r.us / kernelUs < 0.005) continue;
  out(`| ${key} | ${perStep(r.calls)} | ${ms(r.us)} | ${pct(r.us / kernelUs)} | ${r.flops > 0 ? (r.flops / (r.us * 1e3)).toFixed(1) : ''} |`);
}
const small = [...rows.entries()].filter(([, r]) => r.us / kernelUs < 0.005);
if (small.length > 0) {
  const us = small.reduce((s, [, r]) => s + r.us, 0);
  out(`| ${small.length} more operator types, each under 0.5% | ${perStep(small.reduce((s, [, r]) => s + r.calls, 0))} | ${ms(us)} | ${pct(us / kernelUs)} | |`);
}
out();
const budgetUs = (modelFlops / (0.5 * ref)) / 1e3; // per step, µs
out('| per step | value |');
out('|---|---:|');
out(`| model FLOPs (the analytic count of bench/train.ts) | ${(modelFlops / 1e9).toFixed(3)} G |`);
out(`| products executed (from the profiled shapes) | ${(perStep(executedFlops) / 1e9).toFixed(3)} G |`);
out(`| run time (ONNX Runtime's model_run) | ${ms(runUs)} ms |`);
out(`| kernel time, all operators | ${ms(kernelUs)} ms |`);
out(`| kernel time, products only | ${ms(productUs)} ms |`);
out(`| **achieved ratio** (model FLOPs / run time / reference) | **${pct(ratio(runUs))}** |`);
out(`| ceiling if only the products ran, at their in-graph rates | ${pct(ratio(productUs))} |`);
out(`| run time that 50% allows | ${(budgetUs / 1000).toFixed(2)} ms |`);
out(`| left for every other operator at 50% (measured now: ${ms(kernelUs - productUs)} ms) | ${((budgetUs - perStep(productUs)) / 1000).toFixed(2)} ms |`);
