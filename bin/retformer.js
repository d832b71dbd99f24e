#!/usr/bin/env node
// Entry point for `npx retformer`. Runs the compiled CLI in dist/ (built by `npm install` / `npm run build`)
// when it is newer than every file in src/; otherwise the TypeScript sources through tsx, so that an
// edit to src/ is never shadowed by a stale build.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Newest modification time of any file under dir (ms); 0 when dir is missing. */
function newest(dir) {
  let t = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return t;
}

function distIsFresh() {
  try {
    return statSync(join(root, 'dist', 'cli', 'main.js')).mtimeMs >= newest(join(root, 'src'));
  } catch {
    return false;
  }
}

if (distIsFresh()) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
