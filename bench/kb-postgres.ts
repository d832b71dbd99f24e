/**
 * The Postgres rows of `npm run bench:kb` (flag --pg N): the first N pairs of the same generated
 * data and the same queries, through the Postgres backend over the wire protocol, against PGlite
 * (started here, in WebAssembly) and, with --pg-url postgres://user@host:port/db, a native server.
 * Measures the staged load (COPY / INSERT rows/s), the commit (moving rows in + both HNSW index
 * builds), QPS at one connection and recall@k per ef against exact search over the same N, and
 * one full prediction with the embedding given (k-NN + both modalities' neighbour vectors + the
 * forward graph at the default size, random weights) as p50/p99.
 */
import usearch from 'usearch';
import { ModelConfigSchema } from '../src/model/config.ts';
import { assembleInputs } from '../src/model/inputs.ts';
import { ForwardGraph } from '../src/model/onnx/session.ts';
import { initParams, paramSpecs } from '../src/model/params.ts';
import { PostgresKnowledgeBase } from '../src/kb/postgres/index.ts';
import { startPgliteServer } from '../src/kb/postgres/pglite-server.ts';
import type { EmbeddedPair } from '../src/kb/types.ts';

export interface PgBenchInput {
  n: number;
  dim: number;
  k: number;
  efs: number[];
  data: Float32Array; // [>= n, dim] image vectors
  texts: Float32Array; // [>= n, dim] text vectors
  queries: Float32Array; // [q, dim]
  /** Queries timed per ef (PGlite answers tens per second). */
  queryCount: number;
  nativeUrl?: string;
  log: (msg: string) => void;
}

interface PgRow {
  server: string;
  loadMethod: string;
  loadRowsPerS: number;
  commitS: number;
  perEf: Array<{ ef: number; qps: number; recall: number }>;
  predictP50: number;
  predictP99: number;
}

const ENCODER = { kind: 'bench', id: 'bench-synthetic', dim: 0 };

async function benchOne(server: string, spec: string, input: PgBenchInput, truth: Set<number>[]): Promise<PgRow> {
  const { n, dim, k, log } = input;
  const kb = await PostgresKnowledgeBase.create(spec, { encoder: { ...ENCODER, dim }, encoderChecksum: '', encoderFiles: new Map(), dim, overwrite: true });
  const loadMethod = /PGlite/i.test(await kb.serverVersionString()) ? 'INSERT over arrays' : 'COPY (binary)';
  const w = await kb.beginWrite({ allowNewLabels: true });
  let t = performance.now();
  const batch = 2000;
  for (let s = 0; s < n; s += batch) {
    const pairs: EmbeddedPair[] = [];
    for (let i = s; i < Math.min(n, s + batch); i++) {
      pairs.push({ meta: { id: `v${i}`, text: `synthetic pair ${i}`, source: `synthetic/${i}` }, imageVector: input.data.subarray(i * dim, (i + 1) * dim), textVector: input.texts.subarray(i * dim, (i + 1) * dim) });
    }
    await w.append(pairs);
  }
  const loadS = (performance.now() - t) / 1000;
  log(`${server}: staged ${n} pairs in ${loadS.toFixed(1)} s (${loadMethod})`);
  t = performance.now();
  await w.commit();
  const commitS = (performance.now() - t) / 1000;
  log(`${server}: commit (move in + 2 HNSW builds) ${commitS.toFixed(1)} s`);
  const q1 = (q: number) => input.queries.subarray(q * dim, (q + 1) * dim);
  const perEf: PgRow['perEf'] = [];
  for (const ef of input.efs) {
    const found: number[][] = [];
    await kb.search(q1(0), { k, ef, queryEncoderId: ENCODER.id }); // warm-up
    const s = performance.now();
    for (let q = 0; q < input.queryCount; q++) found.push((await kb.search(q1(q), { k, ef, queryEncoderId: ENCODER.id }))[0].map((nb) => nb.row));
    const qps = (input.queryCount / (performance.now() - s)) * 1000;
    const recall = found.reduce((acc, rows, q) => acc + rows.filter((r) => truth[q].has(r)).length / k, 0) / found.length;
    perEf.push({ ef, qps, recall });
    log(`${server}: ef ${ef}: ${qps.toFixed(1)} QPS, recall ${recall.toFixed(4)}`);
  }
  // one full prediction with the embedding given, at the default ef: neighbours, their image and text
  // vectors, then the RetFormer forward graph (default size, random weights, 1 thread, 100 classes)
  const model = ModelConfigSchema.parse({ k });
  const dims = { inputDim: dim, classes: 100 };
  const forward = new ForwardGraph(model, dims, initParams(paramSpecs(model, dims), 0), { threads: 1 });
  const slots = Int32Array.from({ length: k }, (_, j) => j); // neighbour j sits in row j of the fetched vectors
  const predictOne = async (q: number) => {
    const [list] = await kb.search(q1(q), { k, queryEncoderId: ENCODER.id });
    const rows = list.map((nb) => nb.row);
    const vectors = { images: await kb.vectors(rows, 'image'), texts: await kb.vectors(rows, 'text') }; // [k, dim] each
    await forward.run(assembleInputs(q1(q), 1, dim, k, slots, vectors));
  };
  await predictOne(0); // warm-up: the graph's session
  const times: number[] = [];
  for (let q = 0; q < Math.min(input.queryCount, 100); q++) {
    const s = performance.now();
    await predictOne(q);
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  await forward.release();
  await kb.close();
  return { server, loadMethod, loadRowsPerS: n / loadS, commitS, perEf, predictP50: times[Math.floor(times.length / 2)], predictP99: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] };
}

export async function benchPostgres(input: PgBenchInput): Promise<string[]> {
  const { n, dim, k } = input;
  const exact = usearch.exactSearch(input.data.subarray(0, n * dim), input.queries.subarray(0, input.queryCount * dim), dim, k, usearch.MetricKind.Cos, 0) as unknown as { keys: BigUint64Array };
  const truth = Array.from({ length: input.queryCount }, (_, q) => new Set(Array.from(exact.keys.subarray(q * k, (q + 1) * k), Number)));
  const rows: PgRow[] = [];
  const server = await startPgliteServer();
  try {
    rows.push(await benchOne('PGlite 0.5 (WASM) via pglite-socket', server.specFor('bench_kb'), input, truth));
  } finally {
    await server.stop();
  }
  if (input.nativeUrl) rows.push(await benchOne('native PostgreSQL', `${input.nativeUrl}?table=bench_kb`, input, truth));
  const f = (x: number, d = 0) => x.toFixed(d);
  return [
    `Postgres backend: first ${n.toLocaleString('en')} pairs of the same data (image + text vectors), ${input.queryCount} of the same queries, k = ${k}, one connection, HNSW m 16 ef_construction 128 (vector_cosine_ops)`,
    '',
    `| server | load | load rows/s | commit + 2 HNSW builds | index vec/s | ${input.efs.map((ef) => `QPS / recall@${k} ef ${ef}`).join(' | ')} | full prediction p50 / p99 |`,
    `|---|---|---|---|---|${input.efs.map(() => '---|').join('')}---|`,
    ...rows.map(
      (r) =>
        `| ${r.server} | ${r.loadMethod} | ${f(r.loadRowsPerS)} | ${f(r.commitS, 1)} s | ${f((2 * n) / r.commitS)} | ${r.perEf.map((e) => `${f(e.qps, 1)} / ${f(e.recall, 3)}`).join(' | ')} | ${f(r.predictP50, 1)} / ${f(r.predictP99, 1)} ms |`,
    ),
  ];
}
