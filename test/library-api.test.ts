import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeTinyDataset } from './helpers/eval-dataset.ts';

/**
 * The package as a library: compile src/ with tsconfig.build.json (what `npm install` runs), install
 * the result into a scratch app as `retformer`, type-check docs/api.md's example against the emitted
 * declarations and run it against the emitted JavaScript.
 */

const repo = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'retformer-library-'));
after(() => rmSync(work, { recursive: true, force: true }));

function run(command: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: { ...process.env, RETFORMER_QUIET: '1' }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The first ```ts block of docs/api.md. */
function apiExample(): string {
  const doc = readFileSync(join(repo, 'docs', 'api.md'), 'utf8');
  const m = /```ts\n([\s\S]*?)```/.exec(doc);
  assert.ok(m, 'docs/api.md has a ```ts example');
  return m[1];
}

describe('the built package', () => {
  const pkg = join(work, 'pkg');
  const app = join(work, 'app');
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

  before(async () => {
    // the package as npm would install it: package.json, dist/, configs/, its dependencies
    mkdirSync(pkg);
    cpSync(join(repo, 'package.json'), join(pkg, 'package.json'));
    symlinkSync(join(repo, 'node_modules'), join(pkg, 'node_modules'));
    symlinkSync(join(repo, 'configs'), join(pkg, 'configs'));
    const built = await run(process.execPath, [tsc, '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], repo);
    assert.equal(built.code, 0, built.stdout + built.stderr);
    // an app that depends on it
    mkdirSync(join(app, 'node_modules', '@types'), { recursive: true });
    symlinkSync(pkg, join(app, 'node_modules', 'retformer'));
    symlinkSync(join(repo, 'node_modules', 'tsx'), join(app, 'node_modules', 'tsx'));
    symlinkSync(join(repo, 'node_modules', '@types', 'node'), join(app, 'node_modules', '@types', 'node'));
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }));
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, include: ['example.ts'] }),
    );
    writeFileSync(join(app, 'example.ts'), apiExample());
    await writeTinyDataset(join(app, 'data'));
  });

  it('emits JavaScript whose relative imports end in .js, with declarations', () => {
    const index = readFileSync(join(pkg, 'dist', 'index.js'), 'utf8');
    assert.match(index, /from "\.\/infer\/predictor\.js"/);
    assert.doesNotMatch(index, /\.ts"/);
    assert.match(readFileSync(join(pkg, 'dist', 'index.d.ts'), 'utf8'), /Predictor/);
  });

  it("type-checks docs/api.md's example against the declarations, strict, library checks on", async () => {
    const r = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], app);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it("runs docs/api.md's example against the built JavaScript", async () => {
    const r = await run(process.execPath, ['--import', 'tsx', 'example.ts'], app);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^KB: 20 pairs, encoder pixels/);
    assert.match(lines[1], /^prediction: class-[a-d] \(p = 0\.\d{3}\), top class-[a-d] > class-[a-d] > class-[a-d]$/);
    assert.match(lines[2], /^neighbours: 4, attention sum 1\.000, branch logits -?\d+\.\d\d \/ -?\d+\.\d\d$/);
    assert.match(lines[3], /^test: 12 pictures, overall \d+\.\d%$/);
    // the example ran the compiled package, not the TypeScript sources
    const resolved = await run(process.execPath, ['--input-type=module', '-e', "console.log(import.meta.resolve('retformer'))"], app);
    assert.match(resolved.stdout.trim(), /\/pkg\/dist\/index\.js$/);
  });
});
