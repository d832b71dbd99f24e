import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { RetformerError } from '../../util/errors.ts';
import type { EmbeddedPair, KbWriter, WriteOptions } from '../types.ts';
import { loadMethodFor, loadStage, type LoadMethod, type StagedRow } from './load.ts';
import { connectError, type PgKbManifest, type PostgresKnowledgeBase, writerBusy } from './postgres-kb.ts';
import {
  createHnswSql,
  createSchemaSql,
  createStageSql,
  deleteRemovedSql,
  dropSchemaSql,
  dropTableSql,
  insertEncoderFileSql,
  insertManifestSql,
  leftoverStagesSql,
  liveIdsAmongSql,
  lockManifestSql,
  moveStageSql,
  removePairsSql,
  tryLockSql,
  unlockSql,
  updateManifestSql,
} from './sql.ts';
import { writeUnitChecked } from '../vector-check.ts';

/**
 * Test hook (test/kb-postgres.test.ts): kill -9 this process at a named stage of a Postgres write
 * when RETFORMER_TEST_CRASH_AT names it.
 */
export const PG_CRASH_POINTS = ['pg:after-first-batch', 'pg:before-commit'] as const;
const crashAt = process.env.RETFORMER_TEST_CRASH_AT;
function crashPoint(name: (typeof PG_CRASH_POINTS)[number]): void {
  if (crashAt === name) process.kill(process.pid, 'SIGKILL');
}

/**
 * One write on a Postgres KB. Holds its own connection (with the KB's session advisory lock, which
 * the server drops if this process dies). Appended pairs are checked, then loaded into a staging
 * table outside the KB (COPY on real servers); `commit` moves them in, tombstones removed pairs and
 * bumps the generation in one transaction. Until then readers see the last committed generation.
 */
export class PostgresKbWriter implements KbWriter {
  private readonly stage: string;
  private stageCreated = false;
  private readonly appendedIds = new Set<string>();
  private readonly removedIds = new Set<string>();
  private readonly labels: Set<string>;
  private nextRow: number;
  private finished = false;

  private constructor(
    private readonly kb: PostgresKnowledgeBase,
    private readonly client: pg.Client,
    private readonly base: PgKbManifest,
    private readonly method: LoadMethod,
    private readonly options: WriteOptions,
    private readonly release: () => void,
  ) {
    this.stage = `${kb.names.stagePrefix}${randomBytes(6).toString('hex')}`;
    this.labels = new Set(base.labels);
    this.nextRow = base.postgres.rows;
  }

  static async begin(kb: PostgresKnowledgeBase, options: WriteOptions, release: () => void): Promise<PostgresKbWriter> {
    const client = new pg.Client({ connectionString: kb.pgSpec.connectionString });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (err) {
      throw connectError(kb.pgSpec, err);
    }
    try {
      const { rows } = await client.query(tryLockSql, [kb.pgSpec.lockKey]);
      if (rows[0].locked !== true) throw writerBusy(kb.spec, 'elsewhere');
      // a writer killed earlier may have left its staging table: nobody else holds the lock now
      const stale = await client.query(leftoverStagesSql, [kb.names.stagePrefix]);
      for (const r of stale.rows) await client.query(dropTableSql(r.tablename));
      await kb.refresh();
      const method = loadMethodFor(await kb.serverVersionString());
      return new PostgresKbWriter(kb, client, kb.manifest, method, options, release);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  get pending(): { added: number; removed: number } {
    return { added: this.appendedIds.size, removed: this.removedIds.size };
  }

  private checkOpen(): void {
    if (this.finished) throw new RetformerError(`${this.kb.spec}: this write was already committed or aborted`);
  }

  /** Committed live ids among `ids` (none while the KB is being created or replaced). */
  private async liveAmong(ids: string[]): Promise<Set<string>> {
    if (this.kb.pendingCreate || ids.length === 0) return new Set();
    const { rows } = await this.client.query(liveIdsAmongSql(this.kb.names), [ids]);
    return new Set(rows.map((r) => r.id as string));
  }

  async append(pairs: readonly EmbeddedPair[], locate: (i: number) => string = (i) => `pair ${i + 1}`): Promise<void> {
    this.checkOpen();
    if (pairs.length === 0) return;
    const dim = this.base.dim;
    const live = await this.liveAmong(pairs.map((p) => p.meta?.id).filter((id): id is string => typeof id === 'string'));
    const batchIds = new Set<string>();
    const newLabels = new Set<string>();
    const rows: StagedRow[] = pairs.map((p, i) => {
      const where = locate(i);
      const { id, label } = p.meta;
      if (typeof id !== 'string' || id === '') throw new RetformerError(`${where}: empty id`);
      const isLive = live.has(id) && !this.removedIds.has(id);
      if (isLive || this.appendedIds.has(id) || batchIds.has(id)) throw new RetformerError(`${where}: duplicate id "${id}" (ids must be unique in the knowledge base)`);
      batchIds.add(id);
      if (label !== undefined && !this.labels.has(label) && !newLabels.has(label)) {
        if (!this.options.allowNewLabels) {
          const known = this.labels.size === 0 ? 'the knowledge base has no labels' : `known: ${[...this.labels].slice(0, 8).join(', ')}${this.labels.size > 8 ? ', ...' : ''}`;
          throw new RetformerError(`${where}: unknown label "${label}" (${known}; pass --allow-new-labels to add it)`);
        }
        newLabels.add(label);
      }
      return {
        row: this.nextRow + i,
        id,
        text: p.meta.text,
        label,
        source: p.meta.source,
        image: unitChecked(p.imageVector, dim, `${where}: image vector`),
        textVector: unitChecked(p.textVector, dim, `${where}: text vector`),
      };
    });
    if (!this.stageCreated) {
      await this.client.query(createStageSql(this.stage, dim));
      this.stageCreated = true;
    }
    await loadStage(this.client, this.stage, rows, this.method);
    const first = this.appendedIds.size === 0;
    for (const id of batchIds) this.appendedIds.add(id);
    for (const l of newLabels) this.labels.add(l);
    this.nextRow += rows.length;
    if (first) crashPoint('pg:after-first-batch');
  }

  async remove(ids: readonly string[]): Promise<void> {
    this.checkOpen();
    const live = await this.liveAmong([...new Set(ids)]);
    for (const id of ids) {
      if (!live.has(id) || this.removedIds.has(id)) throw new RetformerError(`${this.kb.spec}: unknown id "${id}" (not in the knowledge base, or already removed)`);
    }
    for (const id of ids) this.removedIds.add(id);
  }

  async commit(): Promise<PgKbManifest> {
    this.checkOpen();
    const names = this.kb.names;
    const pendingCreate = this.kb.pendingCreate;
    const generation = (pendingCreate ? 0 : this.base.generation) + 1;
    const c = this.client;
    try {
      await c.query('BEGIN');
      if (pendingCreate) {
        const { options, replace } = pendingCreate;
        if (replace) await c.query(dropSchemaSql(names));
        for (const sql of createSchemaSql(names, options.dim, this.kb.vectorType)) await c.query(sql);
        await c.query(insertManifestSql(names), [
          this.base.formatVersion,
          this.base.kbId,
          JSON.stringify(options.encoder),
          options.encoderChecksum,
          options.dim,
          this.base.dtype,
          JSON.stringify(this.base.postgres.hnsw),
        ]);
        for (const [path, bytes] of [...options.encoderFiles].sort(([a], [b]) => (a < b ? -1 : 1))) await c.query(insertEncoderFileSql(names), [path, Buffer.from(bytes)]);
      } else {
        const { rows } = await c.query(lockManifestSql(names));
        if (Number(rows[0]?.generation) !== this.base.generation) throw new RetformerError(`${this.kb.spec}: another writer committed generation ${rows[0]?.generation} during this write; nothing was changed, run it again`);
      }
      if (this.removedIds.size > 0) {
        const res = await c.query(removePairsSql(names), [generation, [...this.removedIds]]);
        if (res.rowCount !== this.removedIds.size) throw new RetformerError(`${this.kb.spec}: ${this.removedIds.size - (res.rowCount ?? 0)} of the ids to remove were removed by someone else meanwhile; nothing was changed`);
      }
      if (this.stageCreated) {
        try {
          await c.query(moveStageSql(names, this.stage, this.base.dim, this.kb.vectorType));
        } catch (err) {
          if ((err as { code?: string }).code === '23505') throw new RetformerError(`${this.kb.spec}: another writer added one of these ids meanwhile (${(err as Error).message}); nothing was changed`);
          throw err;
        }
        await c.query(dropTableSql(this.stage));
      }
      // indexes are built once, after the first load (faster than growing them row by row); later loads insert into them
      for (const modality of ['image', 'text'] as const) await c.query(createHnswSql(names, modality, this.kb.vectorType, this.base.postgres.hnsw));
      const manifest: PgKbManifest = {
        ...this.base,
        generation,
        count: this.base.count + this.appendedIds.size - this.removedIds.size,
        labels: [...this.labels].sort(),
        postgres: { ...this.base.postgres, rows: this.nextRow, removed: this.base.postgres.removed + this.removedIds.size },
      };
      await c.query(updateManifestSql(names), [manifest.generation, manifest.count, manifest.postgres.rows, manifest.postgres.removed, JSON.stringify(manifest.labels)]);
      crashPoint('pg:before-commit');
      await c.query('COMMIT');
      manifest.updatedAt = new Date().toISOString();
      this.kb.committed(manifest);
      return manifest;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      await this.finish(true);
      throw err;
    } finally {
      await this.finish(false);
    }
  }

  /** Compaction: drop removed pairs for good (live row keys unchanged), one transaction, new generation. */
  async commitCompaction(): Promise<PgKbManifest> {
    const names = this.kb.names;
    const c = this.client;
    try {
      if (this.kb.pendingCreate) return this.base;
      await c.query('BEGIN');
      await c.query(lockManifestSql(names));
      await c.query(deleteRemovedSql(names));
      const manifest: PgKbManifest = { ...this.base, generation: this.base.generation + 1, postgres: { ...this.base.postgres, removed: 0 } };
      await c.query(updateManifestSql(names), [manifest.generation, manifest.count, manifest.postgres.rows, 0, JSON.stringify(manifest.labels)]);
      await c.query('COMMIT');
      await this.kb.refresh();
      return this.kb.manifest;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await this.finish(true);
    }
  }

  async abort(): Promise<void> {
    if (this.finished) return;
    await this.finish(true);
  }

  /** Drop the stage (if asked and it exists), release the lock and the connection. */
  private async finish(dropStage: boolean): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    try {
      if (dropStage && this.stageCreated) await this.client.query(dropTableSql(this.stage)).catch(() => undefined);
      await this.client.query(unlockSql, [this.kb.pgSpec.lockKey]).catch(() => undefined);
    } finally {
      await this.client.end().catch(() => undefined);
      this.release();
    }
  }
}

/** Check one vector (length, finite, non-zero) and return it scaled to unit length, as the file backend stores it. */
function unitChecked(v: Float32Array, dim: number, what: string): Float32Array {
  const out = new Float32Array(dim);
  writeUnitChecked(v, dim, what, out);
  return out;
}
