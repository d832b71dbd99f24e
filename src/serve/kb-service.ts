import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import type { Encoder } from '../encoders/types.ts';
import type { EmbeddedPair, KbManifest, Modality, Neighbour, PairMeta, WritableKnowledgeBase } from '../kb/types.ts';
import { inProcessWrites, type KbWriteRunner } from './kb-writes.ts';
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
  /** How writes are committed (default: through `kb` itself, the commit under the gate). */
  writes?: KbWriteRunner;
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

interface PendingAdd {
  pair: EmbeddedPair;
  allowNewLabels: boolean;
  resolve: (m: KbManifest) => void;
  reject: (err: unknown) => void;
}

/** Most pairs committed in one transaction (group commit). */
const MAX_GROUP = 256;

/**
 * The KB side of the service: searches (as gate readers), paging, thumbnails, and writes. Writes
 * run one transaction at a time in this process; pictures and texts are embedded before queueing;
 * additions waiting together are committed as one transaction (group commit; if that fails, each
 * is retried alone so one bad pair fails only its own request); after each commit the served KB
 * refreshes as the gate's writer, so the next prediction sees the change and none sees it half-made.
 */
export class KbService {
  private readonly queue = new SerialQueue();
  private readonly pendingAdds: PendingAdd[] = [];
  private readonly writes: KbWriteRunner;
  private listing?: { generation: number; rows: number[]; rowOf: Map<string, number> };
  private readonly thumbnails = new Map<string, Buffer>();
  /** Transactions committed and pairs added through them, for the metrics and tests. */
  readonly stats = { transactions: 0, added: 0 };

  constructor(private readonly deps: KbServiceDeps) {
    this.writes = deps.writes ?? inProcessWrites(deps.kb, (fn) => deps.gate.write(fn));
  }

  get kb(): WritableKnowledgeBase {
    return this.deps.kb;
  }

  get pendingWrites(): number {
    return this.queue.pending;
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
    const manifest = await new Promise<KbManifest>((resolve, reject) => {
      this.pendingAdds.push({ pair: embedded, allowNewLabels: pair.allowNewLabel === true, resolve, reject });
      void this.queue.run(() => this.flushAdds());
    });
    return { id, manifest };
  }

  /** Commit the additions waiting now (same label policy) as one transaction. */
  private async flushAdds(): Promise<void> {
    if (this.pendingAdds.length === 0) return; // an earlier flush took them
    const allow = this.pendingAdds[0].allowNewLabels;
    const group: PendingAdd[] = [];
    for (let i = 0; i < this.pendingAdds.length && group.length < MAX_GROUP; ) {
      if (this.pendingAdds[i].allowNewLabels === allow) group.push(...this.pendingAdds.splice(i, 1));
      else i++;
    }
    if (this.pendingAdds.length > 0) void this.queue.run(() => this.flushAdds());
    try {
      const manifest = await this.commitAdds(group.map((g) => g.pair), allow);
      for (const g of group) g.resolve(manifest);
    } catch (err) {
      if (group.length === 1) return group[0].reject(err);
      for (const g of group) {
        try {
          g.resolve(await this.commitAdds([g.pair], allow));
        } catch (one) {
          g.reject(one);
        }
      }
    }
  }

  private async commitAdds(pairs: EmbeddedPair[], allowNewLabels: boolean): Promise<KbManifest> {
    const manifest = await this.writes.add(pairs, { allowNewLabels });
    await this.afterCommit(pairs.length);
    return manifest;
  }

  /** Remove one pair by id; unknown ids are a 404. */
  async remove(id: string): Promise<KbManifest> {
    return this.queue.run(async () => {
      const manifest = await this.writes.remove([id]);
      await this.afterCommit(0);
      return manifest;
    });
  }

  /** The served KB moves to the committed generation, alone (no prediction runs meanwhile). */
  private async afterCommit(added: number): Promise<void> {
    await this.deps.gate.write(() => this.deps.kb.refresh());
    this.stats.transactions++;
    this.stats.added += added;
  }

  /** Wait for queued writes to finish, then stop the writer (graceful shutdown). */
  async close(): Promise<void> {
    await this.queue.drain();
    await this.writes.close();
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
