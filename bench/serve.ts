/**
 * HTTP service benchmark (npm run bench:serve): a trained run with the embedded encoder is served
 * by `retformer serve` in a child process; autocannon (loopback only) drives POST /predict with
 * 50 concurrent clients for a bounded time, while a second client adds KB pairs through the API.
 * Beside it, the same run's in-process `Predictor.classify` rate over the same pictures, measured
 * in the same run (before the load, on the same cores). Prints a Markdown table.
 *
 *   node --import tsx bench/serve.ts [--seconds 20] [--connections 50] [--adds 200] [--inproc-seconds 8] [--seed 0]
 *
 * Targets (issue 13): zero errors; the server reaches >= 70% of the in-process rate; every added
 * pair lands and is found afterwards, and no original pair is lost.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { z } from 'zod';
import { Predictor } from '../src/infer/predictor.ts';
import { buildKnowledgeBase } from '../src/kb/index.ts';
import { trainRun } from '../src/train/index.ts';
import { Rng } from '../src/util/rng.ts';
import { COLOURS, removeTempDirs, SHAPES, shapePng, tempDir, writePairsFixture } from '../test/helpers/kb-fixtures.ts';

/** --kb-pairs -> kbPairs */
function camel(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([key, v]) => [key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), v]));
}

const cfg = z
  .object({
    seconds: z.coerce.number().int().min(1).max(600),
    connections: z.coerce.number().int().min(1).max(1000),
    adds: z.coerce.number().int().min(0).max(10000),
    inprocSeconds: z.coerce.number().min(1).max(600),
    kbPairs: z.coerce.number().int().min(10),
    trainPairs: z.coerce.number().int().min(10),
    seed: z.coerce.number().int(),
  })
  .parse(
    camel(parseArgs({
      options: {
        seconds: { type: 'string', default: '20' },
        connections: { type: 'string', default: '50' },
        adds: { type: 'string', default: '200' },
        'inproc-seconds': { type: 'string', default: '8' },
        'kb-pairs': { type: 'string', default: '600' },
        'train-pairs': { type: 'string', default: '300' },
        seed: { type: 'string', default: '0' },
      },
    }).values as Record<string, string>),
  );

const BIN = fileURLToPath(new URL('../bin/retformer.js', import.meta.url));
const TOKEN = 'bench-serve-token';
const log = (m: string) => process.stderr.write(`bench:serve: ${m}\n`);
const colours = Object.keys(COLOURS) as (keyof typeof COLOURS)[];

/** n distinct seeded shape pictures (PNG bytes). */
async function pictures(n: number, seed: number): Promise<Buffer[]> {
  const rng = new Rng(seed);
  return Promise.all(Array.from({ length: n }, (_, i) => shapePng(COLOURS[colours[i % colours.length]], SHAPES[Math.floor(i / colours.length) % SHAPES.length], new Rng(rng.int(2 ** 30)))));
}

function startServe(runDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'serve', '--run', runDir, '--port', '0', '--token', TOKEN, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ child, url: m[1] });
    });
    child.on('exit', (code) => reject(new Error(`serve exited (${code}): ${err}`)));
  });
}

async function main(): Promise<void> {
  const dir = tempDir('retformer-bench-serve-');
  log(`making a KB (${cfg.kbPairs} pairs, embedded encoder) and training a run (1 epoch) in ${dir}`);
  const kb = await writePairsFixture(dir, { n: cfg.kbPairs, seed: cfg.seed + 1, prefix: 'kb' });
  const train = await writePairsFixture(dir, { n: cfg.trainPairs, seed: cfg.seed + 2, prefix: 'tr' });
  const trainCsv = join(dir, 'train.csv');
  writeFileSync(trainCsv, `path,label,text\n${train.pairs.map((p) => `${p.path},${p.label},${p.text}`).join('\n')}\n`);
  const kbDir = join(dir, 'kb');
  await buildKnowledgeBase({ pairsCsv: kb.csv, out: kbDir, encoderSpec: 'embedded', quiet: true, seed: cfg.seed });
  const runDir = join(dir, 'run');
  await trainRun({ trainCsv, kbDir, outDir: runDir, quiet: true, config: { epochs: 1, seed: cfg.seed } });
  const queries = await pictures(256, cfg.seed + 3);

  // in-process: Predictor.classify over the same pictures, batches of 64 (what the server batches up to)
  const predictor = await Predictor.fromRun(runDir);
  const { k, variant } = predictor.config;
  await predictor.classify(queries.slice(0, 64)); // warm-up
  let classified = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < cfg.inprocSeconds * 1000) {
    const start = classified % queries.length;
    await predictor.classify(queries.slice(start, start + 64));
    classified += 64;
  }
  const inprocRate = classified / ((performance.now() - t0) / 1000);
  await predictor.close();
  log(`in-process classify: ${inprocRate.toFixed(1)} images/s`);

  const server = await startServe(runDir);
  try {
    const before = (await (await fetch(`${server.url}/kb/stats`)).json()) as { pairs: number; generation: number };
    const addPictures = await pictures(cfg.adds, cfg.seed + 4);
    const added: number[] = []; // indices i of the pairs bench-i that were committed
    const addErrors: string[] = [];
    let loadDone = false;
    // one writer client, spreading the additions over the load window
    const adder = (async () => {
      const gap = (cfg.seconds * 1000 * 0.8) / Math.max(1, cfg.adds);
      for (let i = 0; i < cfg.adds; i++) {
        const t = performance.now();
        const res = await fetch(`${server.url}/kb/pairs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify({ image: addPictures[i].toString('base64'), text: `bench pair ${i}: a ${colours[i % colours.length]} shape`, label: colours[i % colours.length], id: `bench-${i}` }),
        });
        if (res.status === 201) added.push(i);
        else addErrors.push(`${res.status} ${await res.text()}`);
        const wait = gap - (performance.now() - t);
        if (wait > 0 && !loadDone) await new Promise((r) => setTimeout(r, wait));
      }
    })();
    let next = 0;
    const load = await autocannon({
      url: `${server.url}/predict`,
      connections: cfg.connections,
      duration: cfg.seconds,
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      requests: [
        {
          setupRequest: (req) => ({ ...req, body: queries[next++ % queries.length] }),
        },
      ],
    });
    loadDone = true;
    await adder;

    // every added id is found: by id (its thumbnail through the KB row), by its own picture, and in the paged listing
    let foundById = 0;
    let foundBySearch = 0;
    for (const i of added) {
      const id = `bench-${i}`;
      if ((await fetch(`${server.url}/kb/pairs/${id}/thumbnail`)).status === 200) foundById++;
      const hit = (await (
        await fetch(`${server.url}/kb/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: addPictures[i].toString('base64'), k: 10 }) })
      ).json()) as { neighbours: Array<{ id: string }> };
      if (hit.neighbours.some((n) => n.id === id)) foundBySearch++;
    }
    const listed = new Set<string>();
    for (let offset = 0; ; offset += 200) {
      const page = (await (await fetch(`${server.url}/kb/pairs?offset=${offset}&limit=200`)).json()) as { total: number; pairs: Array<{ id: string }> };
      for (const p of page.pairs) listed.add(p.id);
      if (offset + 200 >= page.total) break;
    }
    const originalsKept = kb.pairs.filter((p) => listed.has(p.id)).length;
    const after = (await (await fetch(`${server.url}/kb/stats`)).json()) as { pairs: number; generation: number };
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const batchSum = Number(/retformer_predict_batch_size_sum (\S+)/.exec(metrics)?.[1]);
    const batchCount = Number(/retformer_predict_batch_size_count (\S+)/.exec(metrics)?.[1]);

    const errors = load.errors + load.timeouts + load.non2xx;
    const rate = load.requests.average;
    const lines = [
      `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} cores shared with other work (server, load generator and in-process run on the same cores); run ${variant}, k = ${k}, embedded encoder, KB ${cfg.kbPairs} pairs.`,
      '',
      '| what | rate | p50 | p99 | errors |',
      '|---|---:|---:|---:|---:|',
      `| in-process \`Predictor.classify\`, batches of 64 PNGs | ${inprocRate.toFixed(1)} images/s | | | |`,
      `| \`POST /predict\` (one PNG each), ${cfg.connections} clients, ${cfg.seconds} s | ${rate.toFixed(1)} requests/s | ${load.latency.p50} ms | ${load.latency.p99} ms | ${errors} (${load.errors} errors, ${load.timeouts} timeouts, ${load.non2xx} non-2xx) |`,
      `| server / in-process | **${((100 * rate) / inprocRate).toFixed(0)}%** (target >= 70%) | | | |`,
      '',
      `- ${load.requests.total} requests answered; the server ran ${batchCount} forward passes, ${(batchSum / batchCount).toFixed(1)} queries per pass on average.`,
      `- KB additions through the API during the load: ${added.length} of ${cfg.adds} committed (${addErrors.length} refused${addErrors.length ? `: ${addErrors[0]}` : ''}); afterwards ${foundById} found by id, ${foundBySearch} found by searching with their own picture (k = 10), ${added.filter((i) => listed.has(`bench-${i}`)).length} in the paged listing.`,
      `- Pairs ${before.pairs} -> ${after.pairs} (generation ${before.generation} -> ${after.generation}); original pairs still listed: ${originalsKept} of ${kb.pairs.length}.`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    removeTempDirs();
  }
}

await main();
