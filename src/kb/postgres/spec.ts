import { createHash } from 'node:crypto';
import { RetformerError } from '../../util/errors.ts';

/**
 * A Postgres KB spec: `postgres://user[:password]@host:port/db?table=NAME[&other libpq params]`,
 * also written `postgresql://...`, `pg://...` or `pg:postgres://...`. `table` names the pairs
 * table; the KB's other objects are named after it (see tableNames).
 */
export interface PgSpec {
  /** What pg.Pool / pg.Client connect with (the URL without `table`). */
  connectionString: string;
  table: string;
  /** The spec as runs record it: normalised to postgres://, password dropped (give it as PGPASSWORD). */
  display: string;
  /** Session advisory lock key of this KB's single writer (signed 64-bit, as text). */
  lockKey: string;
}

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,39}$/;

export function acceptsPgSpec(spec: string): boolean {
  return /^(postgres|postgresql|pg):/i.test(spec.trim());
}

export function parsePgSpec(spec: string): PgSpec {
  let s = spec.trim();
  if (/^pg:/i.test(s)) s = s.slice(3);
  if (s.startsWith('//')) s = `postgres:${s}`;
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new RetformerError(`KB spec "${spec}": not a valid URL (expected postgres://user@host:port/db?table=NAME)`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new RetformerError(`KB spec "${spec}": expected postgres://user@host:port/db?table=NAME`);
  const table = url.searchParams.get('table');
  if (table === null || table === '') throw new RetformerError(`KB spec "${spec}": missing ?table=NAME (the table that holds the pairs)`);
  if (!TABLE_NAME.test(table)) throw new RetformerError(`KB spec "${spec}": table "${table}" must be lower-case letters, digits and _ (at most 40, not starting with a digit)`);
  if (url.pathname === '' || url.pathname === '/') throw new RetformerError(`KB spec "${spec}": missing database name (postgres://user@host:port/DB?table=${table})`);
  url.searchParams.delete('table');
  const connectionString = url.toString();
  const shown = new URL(url.toString());
  shown.password = '';
  shown.protocol = 'postgres:';
  shown.searchParams.set('table', table);
  const where = `${url.hostname}:${url.port || '5432'}${url.pathname}`;
  const digest = createHash('sha256').update(`retformer-kb\0${where}\0${table}`).digest();
  return { connectionString, table, display: shown.toString(), lockKey: digest.readBigInt64BE(0).toString() };
}

/** Every object one KB owns, named after its pairs table. */
export function tableNames(table: string) {
  return {
    pairs: table,
    manifest: `${table}_manifest`,
    encoder: `${table}_encoder`,
    rowSeq: `${table}_row_seq`,
    liveId: `${table}_live_id`,
    imageIndex: `${table}_image_hnsw`,
    textIndex: `${table}_text_hnsw`,
    /** Prefix of per-writer staging tables (`<table>_stage_<token>`), dropped at commit/abort or by the next writer. */
    stagePrefix: `${table}_stage_`,
  };
}

export type TableNames = ReturnType<typeof tableNames>;

/** Double-quote an identifier (names are already checked against TABLE_NAME). */
export const q = (name: string) => `"${name}"`;
