#!/usr/bin/env node
// `npm run build` (and `npm install`, through `prepare`): compile src/ to dist/ (JavaScript, type
// declarations, source maps) with tsconfig.build.json, and copy the non-TypeScript files under src/
// (e.g. web assets) beside them. bin/retformer.js runs dist/ while it is newer than every file in src/.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  // installed without devDependencies: the CLI runs the TypeScript sources through tsx instead
  console.error('retformer build: typescript is not installed; skipping (the CLI runs from src/ through tsx)');
  process.exit(0);
}
rmSync(dist, { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) {
  rmSync(dist, { recursive: true, force: true }); // never leave a half-built dist for bin/ to run
  process.exit(r.status ?? 1);
}

function copyAssets(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) copyAssets(path);
    else if (!e.name.endsWith('.ts')) {
      const target = join(dist, relative(src, path));
      mkdirSync(dirname(target), { recursive: true });
      cpSync(path, target);
    }
  }
}
copyAssets(src);
