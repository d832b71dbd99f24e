import type { Predictor } from '../infer/types.ts';
import type { WritableKnowledgeBase } from '../kb/types.ts';
import type { KbWriteRunner } from './kb-writes.ts';

/**
 * What the HTTP service runs on: a Predictor whose `kb` is the writable KB it edits (the same
 * object, so a committed write is seen by the next prediction), and where uploaded pictures go.
 */
export interface ServeDeps {
  predictor: Predictor;
  kb: WritableKnowledgeBase;
  /** Folder for pictures added through the API (named by content hash; created on first use). */
  uploadsDir: string;
  /** Shown in /metrics and /kb/stats (default: the run folder's name). */
  modelId?: string;
  /** How KB writes are committed (default: through `kb` itself; the server uses a child process on the KB's spec). */
  writes?: (kb: WritableKnowledgeBase) => KbWriteRunner;
}

export interface ServeLimits {
  /** Largest encoded picture, bytes (default 8 MiB). */
  maxUploadBytes: number;
  /** Largest decoded picture, width x height (default 16 megapixels). */
  maxPixels: number;
  /** Most pictures or embeddings in one /predict/batch request, and per forward pass (default 64). */
  maxBatch: number;
}

export const DEFAULT_LIMITS: ServeLimits = { maxUploadBytes: 8 * 1024 * 1024, maxPixels: 16_000_000, maxBatch: 64 };

export interface ServeOptions {
  /** Bearer token for KB writes; without one, writes are refused (403). */
  token?: string;
  limits?: Partial<ServeLimits>;
  /** Fastify/pino logger: false (tests), true, or pino options. */
  logger?: boolean | { level: string };
}
