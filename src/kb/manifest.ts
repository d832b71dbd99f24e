import { randomUUID } from 'node:crypto';
import type { KbCreateOptions, KbDtype, KbManifest } from './types.ts';

/**
 * The backend-neutral part of a new, empty KB's manifest: a fresh KB id (so a rebuilt KB is never
 * mistaken for the old one), generation 0, the encoder, dim, dtype and no pairs. Each backend adds
 * its own section (`folder`, `postgres`).
 */
export function newNeutralManifest<V extends number>(options: KbCreateOptions, dtype: KbDtype, formatVersion: V): KbManifest & { formatVersion: V; kbId: string; encoderChecksum: string; labels: string[] } {
  const now = new Date().toISOString();
  return {
    formatVersion,
    kbId: randomUUID(),
    generation: 0,
    encoder: options.encoder,
    encoderChecksum: options.encoderChecksum,
    dim: options.dim,
    dtype,
    count: 0,
    labels: [],
    createdAt: now,
    updatedAt: now,
  };
}
