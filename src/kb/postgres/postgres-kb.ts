import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import pg from 'pg';
import { openEncoder as openEncoderFromDir } from '../../encoders/registry.ts';
import type { Encoder, EncoderDescriptor } from '../../encoders/types.ts';
import { RetformerError } from '../../util/errors.ts';
import { checksumDir, connectivityFor, defaultSearchEf } from '../format.ts';
import { DEFAULT_KB_DTYPE, type EncoderFiles, type KbCreateOptions, type KbDtype, type KbManifest, type KbWriter, type Modality, type Neighbour, type PairMeta, type SearchOptions, type WritableKnowledgeBase, type WriteOptions } from '../types.ts';
import { parseVectorLiteral } from './load.ts';
import { type PgSpec, parsePgSpec, type TableNames, tableNames } from './spec.ts';
import {
  exactScanSql,
  knnSql,
  knnTransactionSql,
  liveRowsSql,
  PG_HNSW,
  PG_MAX_EF_SEARCH,
  type PgVectorType,
  selectEncoderFilesSql,
  selectManifestSql,
  selectMetaSql,
  selectVectorsSql,
  setEfSearchSql,
  tableExistsSql,
} from './sql.ts';
import { PostgresKbWriter } from './writer.ts';
import { newNeutralManifest } from '../manifest.ts';
import { checkSearchRequest } from '../vector-check.ts';

export const PG_FORMAT_VERSION = 1;

/**
 * The ef_search of a query that names none: the file backend's rule for the table's M
 * (defaultSearchEf), never below the table's recorded efSearch. The steps were measured on
 * usearch's HNSW; pgvector's, built with the same M, is assumed alike (not measured at 1M here).
 */
export function pgDefaultEf(state: Pick<PgState, 'rows' | 'hnsw'>): number {
  return defaultSearchEf(state.rows, state.hnsw.efSearch, state.hnsw.m);
}

/** This backend's own state beside the neutral manifest fields (as the file backend's `folder` section). */
export interface PgState {
  table: string;
  /** Row keys handed out so far (removed pairs included): keys are 0..rows-1 and never reused. */
  rows: number;
  /** Tombstoned pairs still in the table (until compaction). */
  removed: number;
  /** HNSW build parameters and the default ef_search. */
  hnsw: { m: number; efConstruction: number; efSearch: number };
}

/** The neutral manifest (what every backend has) plus the `postgres` section. */
export interface PgKbManifest extends KbManifest {
  kbId: string;
  encoderChecksum: string;
  labels: string[];
  postgres: PgState;
}

/** A KB not yet committed (created in this process): what its first commit will write. */
export interface PendingCreate {
  options: KbCreateOptions;
  /** Replace an existing KB at the spec (in the first commit's transaction). */
  replace: boolean;
}

const pgTypeOf = (dtype: KbDtype): PgVectorType => {
  if (dtype === 'f32') return 'vector';
  if (dtype === 'f16') return 'halfvec';
  throw new RetformerError(`dtype ${dtype}: pgvector has no 8-bit vector type; use f32 (vector) or f16 (halfvec) for a Postgres KB`);
};

/** Process-wide guard beside the advisory lock (PGlite serves every client from one session, where advisory locks do not exclude). */
const WRITERS_IN_PROCESS = new Set<string>();

/**
 * A knowledge base in PostgreSQL with pgvector: one table of pairs (vectors as vector(dim) or
 * halfvec(dim)), a one-row manifest table, the encoder's frozen files as bytea, an HNSW index per
 * modality (cosine). Reads go through a small pool; each write holds its own connection with the
 * KB's advisory lock, stages rows outside the KB and moves them in with one transaction that also
 * bumps the generation, so readers see the old generation or the new one, never half of a load.
 */
export class PostgresKnowledgeBase implements WritableKnowledgeBase {
  readonly spec: string;
  readonly names: TableNames;
  private current: PgKbManifest;
  private pending: PendingCreate | undefined;
  private serverVersion = '';

  private constructor(
    readonly pgSpec: PgSpec,
    readonly pool: pg.Pool,
    manifest: PgKbManifest,
    pending: PendingCreate | undefined,
  ) {
    this.spec = pgSpec.display;
    this.names = tableNames(pgSpec.table);
    this.current = manifest;
    this.pending = pending;
  }

  static async open(spec: string): Promise<PostgresKnowledgeBase> {
    const parsed = parsePgSpec(spec);
    const pool = newPool(parsed);
    try {
      const manifest = await readManifest(pool, parsed);
      if (!manifest) throw new RetformerError(`${parsed.display}: no knowledge base there (table ${tableNames(parsed.table).manifest} not found)`);
      return new PostgresKnowledgeBase(parsed, pool, manifest, undefined);
    } catch (err) {
      await pool.end();
      throw err;
    }
  }

  /** A new KB: nothing is written until the first commit (which creates the tables in its transaction). */
  static async create(spec: string, options: KbCreateOptions): Promise<PostgresKnowledgeBase> {
    const parsed = parsePgSpec(spec);
    const dtype = options.dtype ?? DEFAULT_KB_DTYPE;
    pgTypeOf(dtype);
    if (options.dim !== options.encoder.dim) throw new RetformerError(`${parsed.display}: dim ${options.dim} differs from the encoder's ${options.encoder.dim}`);
    const pool = newPool(parsed);
    try {
      let existing: PgKbManifest | 'unreadable' | undefined;
      try {
        existing = await readManifest(pool, parsed);
      } catch (err) {
        // an unreadable manifest (another format, a foreign table) is replaced when asked to overwrite
        if (!options.overwrite) throw err;
        existing = 'unreadable';
      }
      if (existing && !options.overwrite) throw new RetformerError(`${parsed.display}: a knowledge base already exists there (${existing === 'unreadable' ? 'unreadable' : `${existing.count} pairs`}); choose another table or drop it`);
      const manifest: PgKbManifest = {
        ...newNeutralManifest(options, dtype, PG_FORMAT_VERSION),
        postgres: { table: parsed.table, rows: 0, removed: 0, hnsw: { ...PG_HNSW, m: connectivityFor(options) } },
      };
      return new PostgresKnowledgeBase(parsed, pool, manifest, { options: { ...options, dtype }, replace: existing !== undefined });
    } catch (err) {
      await pool.end();
      throw err;
    }
  }

  static async exists(spec: string): Promise<boolean> {
    const parsed = parsePgSpec(spec);
    const pool = newPool(parsed);
    try {
      const { rows } = await pool.query(tableExistsSql, [tableNames(parsed.table).manifest]);
      return rows[0].present === true;
    } finally {
      await pool.end();
    }
  }

  get manifest(): PgKbManifest {
    return this.current;
  }
  get dim(): number {
    return this.current.dim;
  }
  get encoderId(): string {
    return this.current.encoder.id;
  }
  get size(): number {
    return this.current.count;
  }
  get vectorType(): PgVectorType {
    return pgTypeOf(this.current.dtype);
  }
  /** The KB awaiting its first commit, if created in this process. */
  get pendingCreate(): PendingCreate | undefined {
    return this.pending;
  }

  /** PGlite serves every connection from one backend session (no private prepared statements, advisory locks shared). */
  get sharedSession(): boolean {
    return /PGlite/i.test(this.serverVersion);
  }

  /** version() of the server (PGlite reports itself there; the bulk loader picks COPY or INSERT by it). */
  async serverVersionString(): Promise<string> {
    if (this.serverVersion === '') this.serverVersion = (await this.pool.query('SELECT version() AS v')).rows[0].v as string;
    return this.serverVersion;
  }

  async refresh(): Promise<void> {
    if (this.pending) return;
    const m = await readManifest(this.pool, this.pgSpec);
    if (!m) throw new RetformerError(`${this.spec}: the knowledge base was dropped`);
    this.current = m;
  }

  /** Called by the writer after its commit. */
  committed(manifest: PgKbManifest): void {
    this.current = manifest;
    this.pending = undefined;
  }

  async search(queries: Float32Array, options: SearchOptions): Promise<Neighbour[][]> {
    const n = checkSearchRequest(this, queries, options);
    const dim = this.dim;
    const { k } = options;
    if (this.pending || this.size === 0) return Array.from({ length: n }, () => []);
    const m = this.current;
    const ef = options.ef ?? pgDefaultEf(m.postgres);
    const { rows: total, removed } = m.postgres;
    if (!Number.isInteger(ef) || ef <= 0) throw new RetformerError(`ef must be a positive integer, got ${ef}`);
    let maxExcluded = 0;
    for (const s of options.excludeIds ?? []) maxExcluded = Math.max(maxExcluded, s?.size ?? 0);
    // over-fetch so that dropping removed pairs and excluded ids still leaves k (as the file backend)
    const margin = maxExcluded + (removed > 0 ? Math.min(removed, k) + 8 : 0);
    const modality = options.modality ?? 'image';
    const client = await this.pool.connect();
    try {
      const out: Neighbour[][] = [];
      for (let qi = 0; qi < n; qi++) {
        const literal = queryLiteral(queries, qi, dim);
        const exclude = options.excludeIds?.[qi];
        let fetch = Math.min(k + margin, total);
        let list = await this.knn(client, modality, literal, fetch, ef, k, exclude);
        // a query that lost too many candidates to filtering is searched again, wider
        while (list.length < Math.min(k, m.count) && fetch < total) {
          fetch = Math.min(fetch * 2, total);
          list = await this.knn(client, modality, literal, fetch, ef, k, exclude);
        }
        out.push(list);
      }
      return out;
    } finally {
      client.release();
    }
  }

  /** One k-NN query in its own transaction (one round trip), with ef_search set for it alone. */
  private async knn(client: pg.PoolClient, modality: Modality, literal: string, fetch: number, ef: number, k: number, exclude: ReadonlySet<string> | undefined): Promise<Neighbour[]> {
    // pgvector's HNSW scan returns at most ef_search rows: breadth is at least the rows wanted
    const breadth = Math.max(ef, fetch);
    const setting = breadth > PG_MAX_EF_SEARCH ? exactScanSql : setEfSearchSql(breadth);
    const sql = knnTransactionSql(setting, knnSql(this.names, modality, this.dim, this.vectorType, literal, fetch));
    let rows: Array<Record<string, unknown>>;
    try {
      const results = (await client.query(sql)) as unknown as pg.QueryResult[];
      rows = results[2].rows;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    const list: Neighbour[] = [];
    for (const r of rows) {
      if (list.length >= k) break;
      const id = r.id as string;
      if (r.removed || exclude?.has(id)) continue;
      const row = Number(r.row_key);
      const similarity = 1 - Number(r.distance);
      const text = r.text as string;
      const source = r.source as string;
      list.push(r.label === null ? { id, text, source, row, similarity } : { id, text, source, label: r.label as string, row, similarity });
    }
    return list;
  }

  private checkRows(rows: readonly number[]): void {
    const total = this.current.postgres.rows;
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= total) throw new RetformerError(`${this.spec}: row ${r} out of range (0..${total - 1})`);
    }
  }

  async vectors(rows: readonly number[], modality: Modality): Promise<Float32Array> {
    this.checkRows(rows);
    const dim = this.dim;
    const out = new Float32Array(rows.length * dim); // [rows.length, dim]
    if (rows.length === 0) return out;
    const { rows: found } = await this.pool.query(selectVectorsSql(this.names, modality), [[...new Set(rows)].map(String)]);
    const byRow = new Map<number, string>(found.map((r) => [Number(r.row_key), r.v as string]));
    rows.forEach((r, i) => {
      const text = byRow.get(r);
      if (text === undefined) throw new RetformerError(`${this.spec}: row ${r} is gone (removed and compacted)`);
      parseVectorLiteral(text, out, i * dim, dim, `${this.spec}: row ${r}`);
    });
    return out;
  }

  /** Rows of every live pair, ascending. */
  async liveRows(): Promise<number[]> {
    const { rows } = await this.pool.query(liveRowsSql(this.names));
    return rows.map((r) => Number(r.row_key));
  }

  async meta(rows: readonly number[]): Promise<PairMeta[]> {
    this.checkRows(rows);
    if (rows.length === 0) return [];
    const { rows: found } = await this.pool.query(selectMetaSql(this.names), [[...new Set(rows)].map(String)]);
    const byRow = new Map<number, PairMeta>(found.map((r) => [Number(r.row_key), r.label === null ? { id: r.id, text: r.text, source: r.source } : { id: r.id, text: r.text, source: r.source, label: r.label }]));
    return rows.map((r) => {
      const m = byRow.get(r);
      if (m === undefined) throw new RetformerError(`${this.spec}: row ${r} is gone (removed and compacted)`);
      return m;
    });
  }

  async beginWrite(options: WriteOptions = {}): Promise<KbWriter> {
    const key = this.pgSpec.lockKey;
    if (WRITERS_IN_PROCESS.has(key)) throw writerBusy(this.spec, 'process');
    WRITERS_IN_PROCESS.add(key);
    try {
      return await PostgresKbWriter.begin(this, options, () => WRITERS_IN_PROCESS.delete(key));
    } catch (err) {
      WRITERS_IN_PROCESS.delete(key);
      throw err;
    }
  }

  async compact(): Promise<KbManifest> {
    const writer = await this.beginWrite();
    return (writer as PostgresKbWriter).commitCompaction();
  }

  async encoderFiles(): Promise<EncoderFiles> {
    if (this.pending) return this.pending.options.encoderFiles;
    const { rows } = await this.pool.query(selectEncoderFilesSql(this.names));
    return new Map(rows.map((r) => [r.path as string, new Uint8Array(r.bytes as Buffer)]));
  }

  /**
   * Write the stored encoder files to a local cache folder (named by their checksum, so reopening
   * is cheap the second time), check the checksum, and reopen the encoder from there.
   */
  async openEncoder(): Promise<Encoder> {
    const m = this.current;
    const dir = join(tmpdir(), 'retformer-pg-encoders', createHash('sha256').update(m.encoderChecksum).digest('hex').slice(0, 24));
    if (!existsSync(dir) || checksumDir(dir) !== m.encoderChecksum) {
      const files = await this.encoderFiles();
      const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      mkdirSync(tmp, { recursive: true });
      try {
        for (const [rel, bytes] of files) {
          const path = normalize(join(tmp, rel));
          if (!path.startsWith(`${tmp}/`)) throw new RetformerError(`${this.spec}: encoder file name "${rel}" leaves its folder`);
          mkdirSync(dirname(path), { recursive: true });
          writeFileSync(path, bytes);
        }
        const sum = checksumDir(tmp);
        if (sum !== m.encoderChecksum) throw new RetformerError(`${this.spec}: stored encoder files do not match the manifest's checksum (${sum} != ${m.encoderChecksum})`);
        rmSync(dir, { recursive: true, force: true });
        renameSync(tmp, dir);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    const encoder = await openEncoderFromDir(m.encoder as EncoderDescriptor, dir);
    if (encoder.id !== m.encoder.id) {
      await encoder.close();
      throw new RetformerError(`${this.spec}: reopened encoder has id "${encoder.id}" but the manifest says "${m.encoder.id}"`);
    }
    return encoder;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export const writerBusy = (spec: string, where: 'process' | 'elsewhere') =>
  new RetformerError(
    where === 'process'
      ? `${spec}: this process is already writing this knowledge base (one writer at a time: commit or abort the open one first)`
      : `${spec}: another session is writing this knowledge base (its advisory lock is held); try again when it ends`,
  );

function newPool(spec: PgSpec): pg.Pool {
  const pool = new pg.Pool({ connectionString: spec.connectionString, max: 2, idleTimeoutMillis: 10_000 });
  // an idle client that loses its server must not crash the process; the next query reports it
  pool.on('error', () => undefined);
  return pool;
}

async function readManifest(pool: pg.Pool, spec: PgSpec): Promise<PgKbManifest | undefined> {
  const names = tableNames(spec.table);
  let present: boolean;
  try {
    present = (await pool.query(tableExistsSql, [names.manifest])).rows[0].present === true;
  } catch (err) {
    throw connectError(spec, err);
  }
  if (!present) return undefined;
  const { rows } = await pool.query(selectManifestSql(names));
  if (rows.length !== 1) throw new RetformerError(`${spec.display}: manifest table ${names.manifest} has ${rows.length} rows, expected 1`);
  return manifestFromRow(rows[0], spec.table);
}

export function manifestFromRow(r: Record<string, unknown>, table: string): PgKbManifest {
  return {
    formatVersion: Number(r.format_version),
    kbId: r.kb_id as string,
    generation: Number(r.generation),
    encoder: r.encoder as EncoderDescriptor,
    encoderChecksum: r.encoder_checksum as string,
    dim: Number(r.dim),
    dtype: r.dtype as KbDtype,
    count: Number(r.count),
    labels: r.labels as string[],
    createdAt: new Date(r.created_at as string).toISOString(),
    updatedAt: new Date(r.updated_at as string).toISOString(),
    postgres: { table, rows: Number(r.rows), removed: Number(r.removed), hnsw: r.hnsw as PgState['hnsw'] },
  };
}

export function connectError(spec: PgSpec, err: unknown): RetformerError {
  const e = err as { code?: string; message?: string };
  if (e.code === 'ECONNREFUSED') return new RetformerError(`${spec.display}: cannot connect (connection refused; is the server running? npm run pg:dev starts a local one)`);
  if (err instanceof RetformerError) return err;
  return new RetformerError(`${spec.display}: ${e.message ?? String(err)}`);
}

function queryLiteral(queries: Float32Array, qi: number, dim: number): string {
  const parts = new Array<string>(dim);
  for (let j = 0; j < dim; j++) {
    const x = queries[qi * dim + j];
    parts[j] = x === 0 ? '0' : x.toPrecision(9);
  }
  return `[${parts.join(',')}]`;
}

