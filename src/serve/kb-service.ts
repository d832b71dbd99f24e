import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import type { Encoder } from '../encoders/types.ts';
import type { EmbeddedPair, KbManifest, Modality, Neighbour, PairMeta, WritableKnowledgeBase } from '../kb/types.ts';
import { HttpError } from './errors.ts';
import { type ReadWriteGate, SerialQueue } from './gate.ts';
import type { CheckedImage } from './images.ts';

export interface KbServiceDeps {
  kb: WritableKnowledgeBase;
  encoder: Encoder;
  gate: ReadWriteGate;
  /** Where pictures added through the API are stored, named by their content hash. */
  uploadsDir: string;
  /** Pixel limit for thumbnails decoded from stored sources. */
  maxPixels: number;
}

export interface NewPair {
  image: CheckedImage;
  text: string;
  label?: string;
  id?: string;
  allowNewLabel?: boolean;
}

export interface ListedPair extends PairMeta {
  row: number;
}

/** A KB backend that can enumerate its live rows (the file KB can); paging needs it. */
interface RowLister {
  liveRows(): number[] | Promise<number[]>;
}

const THUMBNAIL_PX = 160;
const THUMBNAIL_CACHE = 512;
const META_CHUNK = 1024;

/**
 * The KB side of the service: searches (as gate readers), paging, thumbnails, and writes. Writes
 * run one at a time in this process (a queue in front of `beginWrite`), embed outside the lock,
 * and commit + refresh as the gate's writer, so the next prediction sees the change and no
 * prediction sees it half-made.
 */
export class KbService {
  private readonly writes = new SerialQueue();
  private listing?: { generation: number; rows: number[]; rowOf: Map<string, number> };
  private readonly thumbnails = new Map<string, Buffer>();

  constructor(private readonly deps: KbServiceDeps) {}

  get kb(): WritableKnowledgeBase {
    return this.deps.kb;
  }

  get pendingWrites(): number {
    return this.writes.pending;
  }

  /** k-NN of one query vector [dim] in one modality. */
  async search(query: Float32Array, k: number, modality: Modality): Promise<Neighbour[]> {
    const { kb, encoder, gate } = this.deps;
    const [hits] = await gate.read(() => kb.search(query, { k: Math.min(k, Math.max(1, kb.size)), modality, queryEncoderId: encoder.id }));
    return hits ?? [];
  }

  async embedText(text: string): Promise<Float32Array> {
    return this.deps.encoder.embedTexts([text]); // [1, dim]
  }

  async embedImage(image: CheckedImage): Promise<Float32Array> {
    return this.deps.encoder.embedImages([image.bytes]); // [1, dim]
  }

  /** Add one pair; resolves once it is committed (and visible to the next search or prediction). */
  async add(pair: NewPair): Promise<{ id: string; manifest: KbManifest }> {
    const { encoder, uploadsDir } = this.deps;
    const id = pair.id ?? `api-${createHash('sha256').update(pair.image.bytes).update('\0').update(pair.text).update('\0').update(pair.label ?? '').digest('hex').slice(0, 16)}`;
    const [imageVector, textVector] = await Promise.all([encoder.embedImages([pair.image.bytes]), encoder.embedTexts([pair.text])]);
    const source = storeUpload(uploadsDir, pair.image);
    const embedded: EmbeddedPair = { meta: { id, text: pair.text, source, ...(pair.label !== undefined ? { label: pair.label } : {}) }, imageVector, textVector };
    const manifest = await this.transaction({ allowNewLabels: pair.allowNewLabel === true }, async (w) => {
      await w.append([embedded], () => `pair "${id}"`);
    });
    return { id, manifest };
  }

  /** Remove one pair by id; unknown ids are a 404. */
  async remove(id: string): Promise<KbManifest> {
    return this.transaction({}, async (w) => {
      await w.remove([id]);
    });
  }

  private transaction(options: { allowNewLabels?: boolean }, body: (w: Awaited<ReturnType<WritableKnowledgeBase['beginWrite']>>) => Promise<void>): Promise<KbManifest> {
    const { kb, gate } = this.deps;
    return this.writes.run(async () => {
      const writer = await kb.beginWrite(options);
      try {
        await body(writer);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      return gate.write(async () => {
        const manifest = await writer.commit();
        await kb.refresh();
        return manifest;
      });
    });
  }

  /** Wait for queued writes to finish (graceful shutdown). */
  drain(): Promise<void> {
    return this.writes.drain();
  }

  private async currentListing(): Promise<{ rows: number[]; rowOf: Map<string, number> }> {
    const { kb } = this.deps;
    const generation = kb.manifest.generation;
    if (this.listing?.generation === generation) return this.listing;
    const lister = kb as Partial<RowLister>;
    if (typeof lister.liveRows !== 'function') throw new HttpError(501, 'this KB backend cannot list its pairs');
    const rows = await this.deps.gate.read(async () => [...(await lister.liveRows!.call(kb))]);
    const rowOf = new Map<string, number>();
    for (let i = 0; i < rows.length; i += META_CHUNK) {
      const chunk = rows.slice(i, i + META_CHUNK);
      const metas = await kb.meta(chunk);
      for (const [j, m] of metas.entries()) rowOf.set(m.id, chunk[j]);
    }
    this.listing = { generation, rows, rowOf };
    return this.listing;
  }

  /** Live pairs in row order, one page. */
  async list(offset: number, limit: number): Promise<{ total: number; pairs: ListedPair[] }> {
    const { rows } = await this.currentListing();
    const page = rows.slice(offset, offset + limit);
    const metas = page.length > 0 ? await this.deps.kb.meta(page) : [];
    return { total: rows.length, pairs: metas.map((m, i) => ({ ...m, row: page[i] })) };
  }

  /** The live pair with this id, or a 404. */
  async pair(id: string): Promise<ListedPair> {
    const { rowOf } = await this.currentListing();
    const row = rowOf.get(id);
    if (row === undefined) throw new HttpError(404, `unknown id "${id}" (not in the knowledge base)`);
    const [meta] = await this.deps.kb.meta([row]);
    return { ...meta, row };
  }

  /** A small PNG of a pair's stored source picture (found through the KB row, never a path from the request). */
  async thumbnail(id: string): Promise<Buffer> {
    const pair = await this.pair(id);
    const key = `${pair.id}\0${pair.source}`;
    const cached = this.thumbnails.get(key);
    if (cached) return cached;
    if (!pair.source || !existsSync(pair.source) || !statSync(pair.source).isFile()) throw new HttpError(404, `pair "${id}": its stored picture is not available`);
    let png: Buffer;
    try {
      png = await sharp(pair.source, { limitInputPixels: this.deps.maxPixels })
        .resize(THUMBNAIL_PX, THUMBNAIL_PX, { fit: 'inside', withoutEnlargement: false, kernel: 'nearest' })
        .png()
        .toBuffer();
    } catch {
      throw new HttpError(404, `pair "${id}": its stored picture cannot be read`);
    }
    if (this.thumbnails.size >= THUMBNAIL_CACHE) this.thumbnails.delete(this.thumbnails.keys().next().value!);
    this.thumbnails.set(key, png);
    return png;
  }
}

/** Store an uploaded picture under its content hash (atomic, idempotent); returns its absolute path. */
function storeUpload(dir: string, image: CheckedImage): string {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true });
  const name = `${createHash('sha256').update(image.bytes).digest('hex')}.${image.format === 'jpeg' ? 'jpg' : image.format}`;
  const path = join(abs, name);
  if (!existsSync(path)) {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, image.bytes);
    renameSync(tmp, path);
  }
  return path;
}
