/**
 * bench:cold-open — a KB served from less memory than it takes on disk: cold-open time, first
 * search, QPS and recall@32 when the process may keep only part of the KB in RAM.
 *
 * It reads a folder a `bench:scale --keep DIR` run left (DIR/kb, DIR/queries.f32, DIR/truth.json)
 * and, for each memory limit of `--limits` (MiB; `none` = no limit), runs one child process that
 *   1. joins a memory cgroup with that limit (page cache and mapped index pages count against it,
 *      so the kernel evicts index pages the process touched once it reaches the limit);
 *   2. opens the KB through the public API (`openKnowledgeBaseSpec`), then searches the queries one
 *      at a time (k = 32, the KB's default ef), twice: the first pass pages the index in, the second
 *      shows what the limit costs once the process is warm.
 * With `--drop-caches` the page cache is emptied before each child (`sync; echo 3 >
 * /proc/sys/vm/drop_caches`), so the open and the first pass read from disk. Both need root (they
 * write to /sys/fs/cgroup and /proc/sys/vm); without root the bench says so and stops. It measures
 * this machine's disk as much as the KB: report its figures with the machine.
 *
 *   npm run bench:cold-open -- --reuse DIR [--limits none,1024,512] [--drop-caches] [--queries 200] [--pass-seconds 120]
 *
 * A pass stops after --pass-seconds (an index that does not fit its limit can answer about one
 * query a second); its QPS is over the queries it finished. A child the kernel kills for memory
 * (its own heap over the limit: page cache is reclaimed instead) is reported as such.
 *
 * Prints a Markdown table (stdout); progress on stderr.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { openKnowledgeBaseSpec } from '../src/kb/registry.ts';
import { intFlag, listFlag, parseBenchFlags } from './flags.ts';
import { readKeptQueries } from './shared.ts';

const K = 32;
const flags = parseBenchFlags({
  reuse: { value: z.string() },
  limits: { default: 'none,1024,512', value: listFlag(z.union([z.literal('none'), intFlag(64)])) },
  'drop-caches': { default: 'no', value: z.enum(['yes', 'no']) },
  queries: { default: '200', value: intFlag(1) },
  // a pass stops after this many seconds (a thrashing index answers ~1 query a second): QPS is over the queries it did
  'pass-seconds': { default: '120', value: intFlag(1) },
  // internal: run one measurement in this process, in the cgroup at this path ('' = none)
  child: { value: z.string().optional() },
}, process.argv.slice(2).map((a) => (a === '--drop-caches' ? '--drop-caches=yes' : a)));
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const dir = resolve(flags.reuse);

interface ChildResult {
  openMs: number;
  firstSearchMs: number;
  pass1Queries: number;
  pass1Qps: number;
  pass1P50: number;
  pass1P99: number;
  pass2Qps: number;
  pass2P50: number;
  recall: number;
  majorFaults1: number;
  majorFaults2: number;
  maxRssMiB: number;
  cgroupPeakMiB: number | undefined;
}

/** The memory cgroup controller this machine offers: v2 (unified) or v1, with the file names of each. */
function cgroupLayout(): { root: string; limitFile: string; peakFile: string | undefined } {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers') && readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').includes('memory')) {
    return { root: '/sys/fs/cgroup', limitFile: 'memory.max', peakFile: 'memory.peak' };
  }
  if (existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) return { root: '/sys/fs/cgroup/memory', limitFile: 'memory.limit_in_bytes', peakFile: 'memory.max_usage_in_bytes' };
  throw new Error('no memory cgroup controller under /sys/fs/cgroup: bench:cold-open cannot limit memory here');
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

async function measure(cgroup: string): Promise<ChildResult> {
  // join the cgroup before touching the KB, so that every page this process maps is charged to it
  if (cgroup !== '') writeFileSync(join(cgroup, 'cgroup.procs'), String(process.pid));
  const kept = readKeptQueries(dir);
  const all = kept.queries;
  const truth = kept.truth.map((keys) => new Set(keys));
  const t0 = performance.now();
  const kb = await openKnowledgeBaseSpec(join(dir, 'kb'));
  const openMs = performance.now() - t0;
  const dim = kb.dim;
  const count = Math.min(flags.queries, all.length / dim, truth.length);
  const q1 = (q: number) => all.subarray(q * dim, (q + 1) * dim);
  const search = async (q: number) => (await kb.search(q1(q), { k: K, queryEncoderId: kb.encoderId, modality: 'image' }))[0];
  const faults = () => process.resourceUsage().majorPageFault;
  const pass = async () => {
    const times: number[] = [];
    let hits = 0;
    const before = faults();
    const deadline = performance.now() + flags['pass-seconds'] * 1000;
    for (let q = 0; q < count && performance.now() < deadline; q++) {
      const s = performance.now();
      const found = await search(q);
      times.push(performance.now() - s);
      hits += found.filter((nb) => truth[q].has(nb.row)).length;
    }
    return { times, recall: hits / (times.length * K), faults: faults() - before };
  };
  const t1 = performance.now();
  await search(0); // the first search maps the index
  const firstSearchMs = performance.now() - t1;
  const p1 = await pass();
  const p2 = await pass();
  await kb.close();
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  let cgroupPeakMiB: number | undefined;
  const { peakFile } = cgroupLayout();
  if (cgroup !== '' && peakFile && existsSync(join(cgroup, peakFile))) cgroupPeakMiB = Number(readFileSync(join(cgroup, peakFile), 'utf8')) / 2 ** 20;
  return {
    openMs,
    firstSearchMs,
    pass1Queries: p1.times.length,
    pass1Qps: (p1.times.length / sum(p1.times)) * 1000,
    pass1P50: pct(p1.times, 0.5),
    pass1P99: pct(p1.times, 0.99),
    pass2Qps: (p2.times.length / sum(p2.times)) * 1000,
    pass2P50: pct(p2.times, 0.5),
    recall: p1.recall,
    majorFaults1: p1.faults,
    majorFaults2: p2.faults,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    cgroupPeakMiB,
  };
}

if (flags.child !== undefined) {
  process.stdout.write(`${JSON.stringify(await measure(flags.child))}\n`);
  process.exit(0);
}

/** Bytes of every file under `folder`. */
function folderBytes(folder: string): number {
  let total = 0;
  for (const name of readdirSync(folder)) {
    const p = join(folder, name);
    const st = statSync(p);
    total += st.isDirectory() ? folderBytes(p) : st.size;
  }
  return total;
}

if (process.getuid?.() !== 0) {
  log('bench:cold-open needs root: it limits memory with a cgroup and may drop the page cache');
  process.exit(2);
}
const layout = cgroupLayout();
const kbBytes = folderBytes(join(dir, 'kb'));
const kept = JSON.parse(readFileSync(join(dir, 'bench.json'), 'utf8')) as { n: number; dtype: string };
const rows: string[] = [];
const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
for (const limit of flags.limits) {
  let cgroup = '';
  if (limit !== 'none') {
    cgroup = join(layout.root, `retformer-cold-open-${process.pid}-${limit}`);
    mkdirSync(cgroup, { recursive: true });
    writeFileSync(join(cgroup, layout.limitFile), String(limit * 2 ** 20));
  }
  try {
    if (flags['drop-caches'] === 'yes') {
      execFileSync('sync');
      writeFileSync('/proc/sys/vm/drop_caches', '3');
    }
    log(`limit ${limit === 'none' ? 'none' : `${limit} MiB`}${flags['drop-caches'] === 'yes' ? ', page cache dropped' : ''}: opening and searching ...`);
    const childArgs = [process.argv[1], '--reuse', dir, '--queries', String(flags.queries), '--pass-seconds', String(flags['pass-seconds']), '--child', cgroup];
    const child = spawnSync(process.execPath, [...process.execArgv, ...childArgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
    if (child.status !== 0) {
      // the kernel's OOM killer ends a child whose own memory (not page cache) exceeds the limit
      rows.push(`| ${limit} | ${child.signal === 'SIGKILL' ? 'killed (out of memory)' : `failed (exit ${child.status ?? child.signal})`} |||||||||||`);
      log(rows[rows.length - 1]);
      continue;
    }
    const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as ChildResult;
    const mib = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(0));
    rows.push(
      `| ${limit === 'none' ? 'none' : limit} | ${r.openMs.toFixed(0)} | ${r.firstSearchMs.toFixed(1)} | ${r.pass1Queries} | ${r.pass1Qps.toFixed(r.pass1Qps < 10 ? 1 : 0)} | ${r.pass1P50.toFixed(2)} / ${r.pass1P99.toFixed(2)} | ${r.majorFaults1} | ${r.pass2Qps.toFixed(r.pass2Qps < 10 ? 1 : 0)} | ${r.pass2P50.toFixed(2)} | ${r.majorFaults2} | ${r.recall.toFixed(4)} | ${r.maxRssMiB.toFixed(0)} | ${mib(r.cgroupPeakMiB)} |`,
    );
    log(rows[rows.length - 1]);
  } finally {
    if (cgroup !== '') rmdirSync(cgroup);
  }
}
const out = [
  `bench:cold-open --reuse ${dir} — ${kept.n}-pair ${kept.dtype} KB, ${(kbBytes / 2 ** 30).toFixed(2)} GiB on disk; ${flags.queries} queries one at a time, k = ${K}, default ef; page cache ${flags['drop-caches'] === 'yes' ? 'dropped before each run' : 'as it was'}; load average ${loadBefore} before, ${loadavg().map((x) => x.toFixed(2)).join(' ')} after`,
  '',
  '| memory limit (MiB) | open ms | first search ms | pass 1 queries | pass 1 QPS | pass 1 p50 / p99 ms | pass 1 major faults | pass 2 QPS | pass 2 p50 ms | pass 2 major faults | recall@32 | maxRSS MiB | cgroup peak MiB |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows,
];
process.stdout.write(`${out.join('\n')}\n`);
