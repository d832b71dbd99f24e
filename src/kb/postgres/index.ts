import type { KbBackend } from '../types.ts';
import { PostgresKnowledgeBase } from './postgres-kb.ts';
import { acceptsPgSpec } from './spec.ts';

/**
 * The Postgres + pgvector backend (`postgres://user@host:port/db?table=NAME`, or `pg:` + the same).
 * Loaded lazily by src/kb/registry.ts, so users of KB folders never import `pg`.
 */
export const postgresBackend: KbBackend = {
  name: 'postgres',
  accepts: acceptsPgSpec,
  open: (spec) => PostgresKnowledgeBase.open(spec),
  create: (spec, options) => PostgresKnowledgeBase.create(spec, options),
  exists: (spec) => PostgresKnowledgeBase.exists(spec),
};

export { PostgresKnowledgeBase } from './postgres-kb.ts';
export { parsePgSpec } from './spec.ts';
