import { RetformerError } from '../util/errors.ts';
import type { KbBackend, KbCreateOptions, WritableKnowledgeBase } from './types.ts';

/**
 * KB specs as users write them (`--kb`, `--out`), chosen by backend like the encoder registry:
 *   path/to/folder                                 the file backend (usearch HNSW on disk)
 *   postgres://user@host:port/db?table=NAME        Postgres + pgvector (also `pg:` + the same URL tail)
 * Adding a backend is adding an entry to BACKENDS; nothing outside src/kb names a backend.
 *
 * CONTRACT (issues 14/15): the file backend registers here as 'folder' (accepts anything that is
 * not a URL); the Postgres backend registers as 'postgres'. Backends are loaded lazily so that
 * `pg` is not imported by users of folders.
 */
const BACKENDS: Array<{ name: string; accepts: (spec: string) => boolean; load: () => Promise<KbBackend> }> = [];

/** Register a backend (called once per backend module; later entries win ties). */
export function registerKbBackend(entry: { name: string; accepts: (spec: string) => boolean; load: () => Promise<KbBackend> }): void {
  BACKENDS.unshift(entry);
}

export async function kbBackendFor(spec: string): Promise<KbBackend> {
  const entry = BACKENDS.find((b) => b.accepts(spec));
  if (!entry) throw new RetformerError(`KB spec "${spec}": no backend accepts it (a folder path, or postgres://user@host:port/db?table=NAME)`);
  return entry.load();
}

/** Open an existing KB at its last committed state. */
export async function openKnowledgeBaseSpec(spec: string): Promise<WritableKnowledgeBase> {
  return (await kbBackendFor(spec)).open(spec);
}

/** Create a new, empty KB (nothing is visible to readers until the first commit). */
export async function createKnowledgeBase(spec: string, options: KbCreateOptions): Promise<WritableKnowledgeBase> {
  return (await kbBackendFor(spec)).create(spec, options);
}

// The file backend (the default: a spec that is not a URL is a folder path).
registerKbBackend({
  name: 'folder',
  accepts: (spec) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(spec) && !/^pg:/i.test(spec),
  load: async () => (await import('./folder-backend.ts')).folderBackend,
});
