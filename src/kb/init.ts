import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { EncoderDescriptor } from '../encoders/types.ts';
import { writeJsonAtomic } from '../util/fs.ts';
import { DEFAULT_INDEX_PARAMS, type FileKbManifest, KB_FILES, KB_FORMAT_VERSION } from './format.ts';

/**
 * Make `dir` an empty knowledge base (generation 0, no rows, no index files yet) for vectors of
 * the given encoder. Pairs then arrive through `FileKnowledgeBase.beginAdd` (build, import, bench).
 */
export function initKbFolder(dir: string, encoder: EncoderDescriptor, encoderChecksum: string): FileKbManifest {
  mkdirSync(dir, { recursive: true });
  for (const f of [KB_FILES.imageVectors, KB_FILES.textVectors, KB_FILES.meta, KB_FILES.metaIndex]) closeSync(openSync(join(dir, f), 'w'));
  const now = new Date().toISOString();
  const manifest: FileKbManifest = {
    formatVersion: KB_FORMAT_VERSION,
    generation: 0,
    encoder,
    encoderChecksum,
    dim: encoder.dim,
    dtype: 'f32',
    count: 0,
    rows: 0,
    removed: 0,
    metaBytes: 0,
    labels: [],
    index: { ...DEFAULT_INDEX_PARAMS },
    files: { imageIndex: '', textIndex: '', tombstones: null },
    createdAt: now,
    updatedAt: now,
  };
  writeJsonAtomic(join(dir, KB_FILES.manifest), manifest);
  return manifest;
}

