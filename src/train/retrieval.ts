import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { KnowledgeBase, Neighbour } from '../kb/types.ts';
import { labelIndexOf } from '../model/inputs.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { startProgress } from '../util/progress.ts';

/** Retrieved neighbours of N queries: KB rows and similarities, best first, -1 / 0 where fewer than k were left. */
export interface RetrievalResult {
  n: number;
  k: number;
  rows: Int32Array; // [N, k]
  similarities: Float32Array; // [N, k]
}

export interface RetrieveOptions {
  k: number;
  /** Searched beyond k so that k remain after the leakage guard. */
  extra: number;
  queryEncoderId: string;
  /** Absolute image path of each query: neighbours with this `source` are the query's own pair and are dropped. */
  sources?: readonly (string | undefined)[];
  /** Per-query KB ids to exclude (the training CSV's `id` column). */
  excludeIds?: readonly (ReadonlySet<string> | undefined)[];
  batch?: number;
  quiet?: boolean;
  label?: string;
}

/** Keep the first k neighbours that are not the query's own pair (same source path or an excluded id). */
export function guardNeighbours(found: readonly Neighbour[], k: number, source: string | undefined, exclude: ReadonlySet<string> | undefined): Neighbour[] {
  const own = source === undefined ? undefined : resolve(source);
  const kept: Neighbour[] = [];
  for (const nb of found) {
    if (own !== undefined && nb.source !== '' && resolve(nb.source) === own) continue;
    if (exclude?.has(nb.id)) continue;
    kept.push(nb);
    if (kept.length === k) break;
  }
  return kept;
}

/** k-NN of every query row ([N, D]) in the KB's image index, with the leakage guard applied. */
export async function retrieveNeighbours(kb: KnowledgeBase, queries: Float32Array, options: RetrieveOptions): Promise<RetrievalResult> {
  const D = kb.dim;
  const N = queries.length / D;
  const { k } = options;
  const rows = new Int32Array(N * k).fill(-1);
  const similarities = new Float32Array(N * k);
  const batch = options.batch ?? 256;
  const bar = startProgress(options.label ?? 'retrieve', N, { unit: 'q', quiet: options.quiet });
  const want = Math.min(k + options.extra, Math.max(kb.size, 1));
  for (let start = 0; start < N; start += batch) {
    const end = Math.min(N, start + batch);
    const q = queries.subarray(start * D, end * D);
    const exclude = options.excludeIds?.slice(start, end);
    const found = await kb.search(q, { k: want, queryEncoderId: options.queryEncoderId, excludeIds: exclude, modality: 'image' });
    for (let i = start; i < end; i++) {
      let kept = guardNeighbours(found[i - start], k, options.sources?.[i], options.excludeIds?.[i]);
      if (kept.length < k && found[i - start].length >= want && want < kb.size) {
        // many duplicates of the query: search wider once for this query
        const wider = await kb.search(queries.subarray(i * D, (i + 1) * D), {
          k: Math.min(kb.size, 4 * want + k),
          queryEncoderId: options.queryEncoderId,
          excludeIds: options.excludeIds ? [options.excludeIds[i]] : undefined,
          modality: 'image',
        });
        kept = guardNeighbours(wider[0], k, options.sources?.[i], options.excludeIds?.[i]);
      }
      kept.forEach((nb, j) => {
        rows[i * k + j] = nb.row;
        similarities[i * k + j] = nb.similarity;
      });
    }
    bar.tick(end - start);
  }
  bar.stop();
  return { n: N, k, rows, similarities };
}

/** Cache key of a retrieval: KB content generation, encoder, k, the guard's inputs and the queries themselves. */
export function retrievalKey(parts: { kbDir: string; generation: number; encoderId: string; k: number; extra: number; queries: Float32Array; sources?: readonly (string | undefined)[]; excludeIds?: readonly (ReadonlySet<string> | undefined)[] }): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ kb: parts.kbDir, g: parts.generation, e: parts.encoderId, k: parts.k, x: parts.extra }));
  h.update(new Uint8Array(parts.queries.buffer, parts.queries.byteOffset, parts.queries.byteLength));
  h.update(JSON.stringify(parts.sources ?? []));
  h.update(JSON.stringify((parts.excludeIds ?? []).map((s) => (s ? [...s].sort() : null))));
  return h.digest('hex').slice(0, 24);
}

/** Load a cached retrieval from `dir` (RUN_DIR/retrieval), or undefined. */
export function readRetrievalCache(dir: string, key: string): RetrievalResult | undefined {
  const meta = join(dir, `${key}.json`);
  const bin = join(dir, `${key}.bin`);
  if (!existsSync(meta) || !existsSync(bin)) return undefined;
  const { n, k } = JSON.parse(readFileSync(meta, 'utf8')) as { n: number; k: number };
  const bytes = readFileSync(bin);
  if (bytes.byteLength !== n * k * 8) return undefined;
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return { n, k, rows: new Int32Array(buf, 0, n * k), similarities: new Float32Array(buf, n * k * 4, n * k) };
}

export function writeRetrievalCache(dir: string, key: string, r: RetrievalResult, info: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  const out = new Uint8Array(r.n * r.k * 8);
  out.set(new Uint8Array(r.rows.buffer, r.rows.byteOffset, r.rows.byteLength), 0);
  out.set(new Uint8Array(r.similarities.buffer, r.similarities.byteOffset, r.similarities.byteLength), r.n * r.k * 4);
  writeFileAtomic(join(dir, `${key}.bin`), out);
  writeJsonAtomic(join(dir, `${key}.json`), { n: r.n, k: r.k, ...info });
}

/** The neighbour vectors a retrieval needs, fetched once: index [N*k] into tables [U, D] (-1 = no neighbour). */
export interface NeighbourTable {
  index: Int32Array;
  images: Float32Array;
  texts: Float32Array;
  /** With `classes` (label memory): each unique pair's label as a class index, -1 for none or unknown: [U]. */
  labels?: Int32Array;
}

export async function fetchNeighbourTable(kb: KnowledgeBase, rows: Int32Array, classes?: readonly string[]): Promise<NeighbourTable> {
  const unique = [...new Set(Array.from(rows).filter((r) => r >= 0))].sort((a, b) => a - b);
  const slot = new Map<number, number>();
  for (const [i, r] of unique.entries()) slot.set(r, i);
  const index = Int32Array.from(rows, (r) => (r >= 0 ? slot.get(r)! : -1));
  const chunk = 4096;
  const D = kb.dim;
  const images = new Float32Array(unique.length * D);
  const texts = new Float32Array(unique.length * D);
  const labels = classes ? new Int32Array(unique.length) : undefined;
  for (let s = 0; s < unique.length; s += chunk) {
    const part = unique.slice(s, s + chunk);
    images.set(await kb.vectors(part, 'image'), s * D);
    texts.set(await kb.vectors(part, 'text'), s * D);
    if (labels && classes) labels.set(labelIndexOf((await kb.meta(part)).map((m) => m.label), classes), s);
  }
  return labels ? { index, images, texts, labels } : { index, images, texts };
}
