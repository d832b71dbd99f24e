import { env } from '../util/env.ts';

/**
 * Test hook (test/kb-crash.test.ts): `kill -9` this process at the named stage of a KB write when
 * RETFORMER_TEST_CRASH_AT names it; otherwise a no-op (the variable is read once, at load).
 * `kb build` appends through the same path, so the add stages also stop a build.
 */
export const CRASH_POINTS = [
  'add:after-first-batch', // one batch of vectors/metadata appended past the committed lengths
  'add:before-index-save', // every batch appended and fsynced, no new index file yet
  'layout:before-rename', // the first new index file saved by usearch and its laid-out copy written and fsynced, not yet renamed over it
  'add:before-manifest', // new index files saved, manifest not yet replaced
  'add:after-manifest', // new manifest renamed into place, superseded index files not yet deleted
  'remove:before-manifest', // new tombstone file written, manifest not yet replaced
  'remove:after-manifest', // new manifest renamed into place, superseded tombstone file not yet deleted
  'compact:after-data', // compacted vector and metadata files written, no index yet
  'compact:before-manifest', // compacted indexes saved and everything fsynced, manifest not yet replaced
  'compact:after-manifest', // new manifest renamed into place, files of older generations not yet deleted
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

const crashAt = env.testCrashAt();

export function crashPoint(name: CrashPoint): void {
  if (crashAt === name) process.kill(process.pid, 'SIGKILL');
}
