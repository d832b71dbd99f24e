/**
 * Child process for test/kb-readers-during-writes.test.ts: reads a KB in a loop until STOP_FILE
 * exists — a fresh open + search + metadata + vectors each round, and one long-lived handle that
 * refresh()es and searches — and prints {rounds, refreshed, failures} as JSON.
 *   node --import tsx test/helpers/kb-reader-loop.ts KB_SPEC STOP_FILE
 */
import { existsSync } from 'node:fs';
import { openKnowledgeBaseSpec } from '../../src/kb/registry.ts';
import type { WritableKnowledgeBase } from '../../src/kb/types.ts';

const [spec, stopFile] = process.argv.slice(2);
const failures: string[] = [];
let rounds = 0;
let refreshed = 0;
let failed = 0;

async function readOnce(kb: WritableKnowledgeBase): Promise<void> {
  const [first] = await kb.search(await kb.vectors([0], 'image'), { k: 1, queryEncoderId: kb.encoderId });
  const q = await kb.vectors([first[0].row], 'image'); // [1, dim]
  for (const modality of ['image', 'text'] as const) {
    const [found] = await kb.search(q, { k: 8, modality, queryEncoderId: kb.encoderId });
    if (found.length === 0) throw new Error('no neighbours');
    const meta = await kb.meta(found.map((n) => n.row));
    if (meta.some((m, i) => m.id !== found[i].id)) throw new Error('metadata does not match the rows searched');
  }
}

const longLived = await openKnowledgeBaseSpec(spec);
let lastGeneration = longLived.manifest.generation;
while (!existsSync(stopFile)) {
  rounds++;
  try {
    const kb = await openKnowledgeBaseSpec(spec);
    try {
      await readOnce(kb);
    } finally {
      await kb.close();
    }
  } catch (err) {
    if (failures.length < 100) failures.push(`open: ${(err as Error).message}`);
    else failed++;
  }
  try {
    await longLived.refresh();
    if (longLived.manifest.generation !== lastGeneration) {
      refreshed++;
      lastGeneration = longLived.manifest.generation;
    }
    await readOnce(longLived);
  } catch (err) {
    if (failures.length < 100) failures.push(`long-lived: ${(err as Error).message}`);
    else failed++;
  }
}
await longLived.close();
process.stdout.write(`${JSON.stringify({ rounds, refreshed, failures: failures.slice(0, 20), failureCount: failures.length + failed })}\n`);
