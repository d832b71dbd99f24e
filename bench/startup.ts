/**
 * CLI start-up benchmark (npm run bench:startup): wall-clock and CPU seconds of `retformer --help`
 * and of one `retformer predict`, run through the compiled dist/ (what bin/retformer.js runs after
 * `npm install`) and through the TypeScript sources with tsx (the fallback, and the only path before
 * the build step), optionally beside an earlier checkout's bin/retformer.js. Commands take turns, so
 * that a load change on a shared machine hits every row alike; medians over --runs.
 *
 *   node --import tsx bench/startup.ts --run RUN_DIR --image IMG [--before OLD_CHECKOUT] [--runs 10]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = parseArgs({
  options: { run: { type: 'string' }, image: { type: 'string' }, before: { type: 'string' }, runs: { type: 'string', default: '10' } },
}).values;
const runs = Number(args.runs);

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}
const distMain = join(root, 'dist', 'cli', 'main.js');
if (!existsSync(distMain) || statSync(distMain).mtimeMs < newest(join(root, 'src'))) {
  console.error('dist/ is missing or older than src/: run `npm run build` first');
  process.exit(1);
}

/** How each variant starts the CLI: node arguments before the command's own. */
const variants: Array<{ name: string; argv: string[] }> = [
  { name: 'dist (bin/retformer.js, built)', argv: [join(root, 'bin', 'retformer.js')] },
  { name: 'tsx (src/, the fallback)', argv: ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts')] },
];
if (args.before) variants.push({ name: `before (${args.before}/bin/retformer.js, tsx)`, argv: [join(args.before, 'bin', 'retformer.js')] });

const commands: Array<{ name: string; argv: string[] }> = [{ name: '--help', argv: ['--help'] }];
if (args.run && args.image) commands.push({ name: 'predict (one image)', argv: ['predict', '--run', args.run, '--image', args.image, '--json'] });

/** One timed run under /usr/bin/time: wall, user and system seconds. */
function timed(argv: string[]): { wall: number; cpu: number } {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', process.execPath, ...argv], { cwd: root, encoding: 'utf8', env: { ...process.env, RETFORMER_QUIET: '1' } });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  const [wall, user, sys] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
  return { wall, cpu: user + sys };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const samples = new Map<string, { wall: number[]; cpu: number[] }>();
for (const c of commands) for (const v of variants) samples.set(`${c.name}|${v.name}`, { wall: [], cpu: [] });
for (const c of commands) for (const v of variants) timed([...v.argv, ...c.argv]); // warm the file cache
for (let i = 0; i < runs; i++) {
  for (const c of commands) {
    for (const v of variants) {
      const t = timed([...v.argv, ...c.argv]);
      const s = samples.get(`${c.name}|${v.name}`)!;
      s.wall.push(t.wall);
      s.cpu.push(t.cpu);
    }
  }
}

console.log(`| command | start-up path | wall s (median of ${runs}) | CPU s (user+sys, median) |`);
console.log('|---|---|---:|---:|');
for (const c of commands) {
  for (const v of variants) {
    const s = samples.get(`${c.name}|${v.name}`)!;
    console.log(`| ${c.name} | ${v.name} | ${median(s.wall).toFixed(2)} | ${median(s.cpu).toFixed(2)} |`);
  }
}
