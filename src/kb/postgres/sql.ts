import type { Modality } from '../types.ts';
import { q, type TableNames } from './spec.ts';

/**
 * Every SQL statement the Postgres backend issues, in one place (docs/postgres.md quotes them).
 * `$n` are bind parameters; names come from spec.ts (checked, then quoted).
 */

/** pgvector column type per KB dtype: f32 -> vector (4 bytes a value), f16 -> halfvec (2 bytes). */
export type PgVectorType = 'vector' | 'halfvec';

/** HNSW build parameters (pgvector's names); ef_search is set per query. Same graph degree as the file backend. */
export const PG_HNSW = { m: 16, efConstruction: 128, efSearch: 96 } as const;
/** pgvector caps hnsw.ef_search at 1000; a query that needs more candidates runs as an exact scan. */
export const PG_MAX_EF_SEARCH = 1000;

export const vectorColumn = (modality: Modality) => (modality === 'image' ? 'image_vec' : 'text_vec');

export function createSchemaSql(t: TableNames, dim: number, type: PgVectorType): string[] {
  return [
    'CREATE EXTENSION IF NOT EXISTS vector',
    `CREATE TABLE ${q(t.pairs)} (
  row_key     bigint PRIMARY KEY,
  id          text NOT NULL,
  text        text NOT NULL,
  label       text,
  source      text NOT NULL,
  removed_gen bigint,
  image_vec   ${type}(${dim}) NOT NULL,
  text_vec    ${type}(${dim}) NOT NULL
)`,
    `CREATE UNIQUE INDEX ${q(t.liveId)} ON ${q(t.pairs)} (id) WHERE removed_gen IS NULL`,
    `CREATE TABLE ${q(t.manifest)} (
  singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  format_version   integer NOT NULL,
  kb_id            text NOT NULL,
  generation       bigint NOT NULL,
  encoder          jsonb NOT NULL,
  encoder_checksum text NOT NULL,
  dim              integer NOT NULL,
  dtype            text NOT NULL,
  count            bigint NOT NULL,
  rows             bigint NOT NULL,
  removed          bigint NOT NULL,
  labels           jsonb NOT NULL,
  hnsw             jsonb NOT NULL,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL
)`,
    `CREATE TABLE ${q(t.encoder)} (path text PRIMARY KEY, bytes bytea NOT NULL)`,
  ];
}

export const dropSchemaSql = (t: TableNames) => `DROP TABLE IF EXISTS ${q(t.pairs)}, ${q(t.manifest)}, ${q(t.encoder)}`;

export const insertManifestSql = (t: TableNames) =>
  `INSERT INTO ${q(t.manifest)} (format_version, kb_id, generation, encoder, encoder_checksum, dim, dtype, count, rows, removed, labels, hnsw, created_at, updated_at)
   VALUES ($1, $2, 0, $3, $4, $5, $6, 0, 0, 0, '[]', $7, now(), now())`;

export const insertEncoderFileSql = (t: TableNames) => `INSERT INTO ${q(t.encoder)} (path, bytes) VALUES ($1, $2)`;

export const selectManifestSql = (t: TableNames) =>
  `SELECT format_version, kb_id, generation, encoder, encoder_checksum, dim, dtype, count, rows, removed, labels, hnsw, created_at, updated_at FROM ${q(t.manifest)}`;

export const lockManifestSql = (t: TableNames) => `SELECT generation FROM ${q(t.manifest)} FOR UPDATE`;

export const updateManifestSql = (t: TableNames) =>
  `UPDATE ${q(t.manifest)} SET generation = $1, count = $2, rows = $3, removed = $4, labels = $5, updated_at = now()`;

export const selectEncoderFilesSql = (t: TableNames) => `SELECT path, bytes FROM ${q(t.encoder)} ORDER BY path`;

export const tableExistsSql = 'SELECT to_regclass($1) IS NOT NULL AS present';

/** The writer's lock: one session-level advisory lock per KB, released by the server if the writer's connection dies. */
export const tryLockSql = 'SELECT pg_try_advisory_lock($1::bigint) AS locked';
export const unlockSql = 'SELECT pg_advisory_unlock($1::bigint)';

/** Staging table of one writer: appended pairs wait here (outside the KB) until commit copies them in. */
export const createStageSql = (stage: string, dim: number) =>
  `CREATE UNLOGGED TABLE ${q(stage)} (row_key bigint PRIMARY KEY, id text NOT NULL, text text NOT NULL, label text, source text NOT NULL, image_vec vector(${dim}) NOT NULL, text_vec vector(${dim}) NOT NULL)`;
export const dropTableSql = (name: string) => `DROP TABLE IF EXISTS ${q(name)}`;
export const leftoverStagesSql = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND starts_with(tablename, $1)`;

/** Bulk load into the stage: COPY in PostgreSQL's binary format (real servers). */
export const copyStageSql = (stage: string) => `COPY ${q(stage)} (row_key, id, text, label, source, image_vec, text_vec) FROM STDIN (FORMAT binary)`;
/** The same load as one INSERT over arrays (servers without COPY FROM STDIN on the wire, e.g. PGlite's socket server). */
export const insertStageSql = (stage: string) =>
  `INSERT INTO ${q(stage)} (row_key, id, text, label, source, image_vec, text_vec)
   SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::vector[], $7::vector[])`;

export const liveIdsAmongSql = (t: TableNames) => `SELECT id FROM ${q(t.pairs)} WHERE removed_gen IS NULL AND id = ANY($1::text[])`;

/** Commit, inside one transaction: tombstone removed pairs, move staged pairs in, build missing indexes, bump the generation. */
/** Row keys of every live pair, ascending (paging in the HTTP service, export). */
export const liveRowsSql = (t: TableNames) => `SELECT row_key FROM ${q(t.pairs)} WHERE removed_gen IS NULL ORDER BY row_key`;
export const removePairsSql = (t: TableNames) => `UPDATE ${q(t.pairs)} SET removed_gen = $1 WHERE removed_gen IS NULL AND id = ANY($2::text[])`;
export const moveStageSql = (t: TableNames, stage: string, dim: number, type: PgVectorType) =>
  `INSERT INTO ${q(t.pairs)} (row_key, id, text, label, source, image_vec, text_vec)
   SELECT row_key, id, text, label, source, image_vec::${type}(${dim}), text_vec::${type}(${dim}) FROM ${q(stage)} ORDER BY row_key`;
export const createHnswSql = (t: TableNames, modality: Modality, type: PgVectorType, hnsw: { m: number; efConstruction: number } = PG_HNSW) =>
  `CREATE INDEX IF NOT EXISTS ${q(modality === 'image' ? t.imageIndex : t.textIndex)} ON ${q(t.pairs)}
   USING hnsw (${vectorColumn(modality)} ${type}_cosine_ops) WITH (m = ${Math.trunc(hnsw.m)}, ef_construction = ${Math.trunc(hnsw.efConstruction)})`;

/** Compaction: removed pairs leave the table for good (row keys of live pairs do not change). */
export const deleteRemovedSql = (t: TableNames) => `DELETE FROM ${q(t.pairs)} WHERE removed_gen IS NOT NULL`;

/** k-NN of one query: cosine distance (<=>) through the modality's HNSW index, best first. `query` is a vector literal ([x1,...], numbers only). */
export const knnSql = (t: TableNames, modality: Modality, dim: number, type: PgVectorType, query: string, limit: number) => {
  const col = vectorColumn(modality);
  return `SELECT row_key, id, text, label, source, removed_gen IS NOT NULL AS removed, ${col} <=> '${query}'::${type}(${dim}) AS distance FROM ${q(t.pairs)} ORDER BY ${col} <=> '${query}'::${type}(${dim}) LIMIT ${Math.trunc(limit)}`;
};
/** One round trip per query: its own transaction, so that ef_search (SET LOCAL) applies to it alone. */
export const knnTransactionSql = (setting: string, knn: string) => `BEGIN; ${setting}; ${knn}; COMMIT`;
/** Per query, inside its transaction: the HNSW candidate list size (pgvector reads it at scan start). */
export const setEfSearchSql = (ef: number) => `SET LOCAL hnsw.ef_search = ${Math.trunc(ef)}`;
/** Past pgvector's ef_search cap: read every row (exact, as the file backend widens to the whole index). */
export const exactScanSql = 'SET LOCAL enable_indexscan = off';

export const selectVectorsSql = (t: TableNames, modality: Modality) => `SELECT row_key, ${vectorColumn(modality)}::text AS v FROM ${q(t.pairs)} WHERE row_key = ANY($1::bigint[])`;
export const selectMetaSql = (t: TableNames) => `SELECT row_key, id, text, label, source FROM ${q(t.pairs)} WHERE row_key = ANY($1::bigint[])`;
