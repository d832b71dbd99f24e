import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { env } from '../util/env.ts';
import { toUserError } from '../util/errors.ts';
import type { EmbedOptions, Encoder } from './types.ts';

/**
 * A disk cache of image embeddings, so that a second run (demo, training, eval) does not
 * re-encode the same files. One folder per encoder id; a file's key is its absolute path, size
 * and mtime, so an edited image is re-embedded. Append-only: `vectors.f32` rows first, then
 * `keys.tsv` lines that point at them, so a crash can only lose the tail, never mislabel a row.
 */
export class EmbeddingCache {
  private readonly dir: string;
  private readonly dim: number;
  private readonly rows = new Map<string, number>();
  private vectors: Float32Array;
  private count = 0;

  constructor(rootDir: string, encoder: Pick<Encoder, 'id' | 'dim'>) {
    this.dim = encoder.dim;
    this.dir = join(rootDir, createHash('sha256').update(encoder.id).digest('hex').slice(0, 16));
    mkdirSync(this.dir, { recursive: true });
    const vecFile = join(this.dir, 'vectors.f32');
    const keyFile = join(this.dir, 'keys.tsv');
    const bytes = existsSync(vecFile) ? readFileSync(vecFile) : Buffer.alloc(0);
    const stored = Math.floor(bytes.byteLength / (4 * this.dim));
    this.vectors = new Float32Array(Math.max(stored, 1024) * this.dim);
    this.vectors.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + stored * this.dim * 4)));
    if (existsSync(keyFile)) {
      const lines = readFileSync(keyFile, 'utf8').split('\n');
      lines.pop(); // '' after the last newline, or a line cut short by a crash or a full disk (its row number may be cut too)
      for (const line of lines) {
        const tab = line.lastIndexOf('\t');
        if (tab < 0) continue;
        const row = Number(line.slice(tab + 1));
        if (Number.isInteger(row) && row < stored) this.rows.set(line.slice(0, tab), row);
      }
    }
    // rows in memory are the file's rows as loaded, then this instance's appends (a key line lost in a crash only costs a re-embed)
    this.count = stored;
  }

  private static keyOf(path: string): string {
    const abs = resolve(path);
    const st = statSync(abs);
    return `${abs}|${st.size}|${Math.floor(st.mtimeMs)}`;
  }

  /** Embed image files, reusing cached rows: returns [paths.length, dim]. */
  async embedImages(encoder: Encoder, paths: readonly string[], options: EmbedOptions = {}): Promise<Float32Array> {
    const keys = paths.map((p) => (existsSync(p) ? EmbeddingCache.keyOf(p) : `missing:${p}`));
    const missing: number[] = [];
    keys.forEach((k, i) => {
      if (!this.rows.has(k)) missing.push(i);
    });
    if (missing.length > 0) {
      const fresh = await encoder.embedImages(
        missing.map((i) => paths[i]),
        options,
      ); // [missing, dim]
      this.append(
        missing.map((i) => keys[i]),
        fresh,
      );
    }
    const out = new Float32Array(paths.length * this.dim);
    keys.forEach((k, i) => {
      const row = this.rows.get(k)!;
      out.set(this.vectors.subarray(row * this.dim, (row + 1) * this.dim), i * this.dim);
    });
    return out;
  }

  private append(keys: string[], vecs: Float32Array): void {
    const need = (this.count + keys.length) * this.dim;
    if (need > this.vectors.length) {
      const grown = new Float32Array(Math.max(need, this.vectors.length * 2));
      grown.set(this.vectors);
      this.vectors = grown;
    }
    this.vectors.set(vecs, this.count * this.dim);
    // The file's rows go after the whole rows on disk now, not after this instance's count: another
    // process (a parallel training run) or instance may have appended since this one loaded. A tail
    // cut short by a full disk is overwritten by the next batch.
    const vecFile = join(this.dir, 'vectors.f32');
    const rowBytes = 4 * this.dim;
    const fileRow = existsSync(vecFile) ? Math.floor(statSync(vecFile).size / rowBytes) : 0;
    writeFully(vecFile, new Uint8Array(vecs.buffer, vecs.byteOffset, vecs.byteLength), fileRow * rowBytes);
    const lines = keys.map((k, i) => `${k}\t${fileRow + i}`).join('\n');
    writeFully(join(this.dir, 'keys.tsv'), Buffer.from(`${lines}\n`), undefined);
    for (const [i, k] of keys.entries()) this.rows.set(k, this.count + i); // rows in memory: this instance's own order
    this.count += keys.length;
  }
}

/**
 * Write all of `data` into `file` at `position` (undefined: append), fsynced; a system error (full
 * disk, ...) is one line naming the file.
 */
function writeFully(file: string, data: Uint8Array, position: number | undefined): void {
  try {
    const fd = openSync(file, position === undefined ? 'a' : existsSync(file) ? 'r+' : 'w');
    try {
      let done = 0;
      while (done < data.byteLength) done += writeSync(fd, data, done, data.byteLength - done, position === undefined ? null : position + done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw toUserError(err, file) ?? err;
  }
}

/** The default cache folder: $RETFORMER_CACHE or ./.cache/retformer/embeddings. */
export function defaultCacheDir(): string {
  return resolve(env.cacheDir() ?? join('.cache', 'retformer', 'embeddings'));
}
