/**
 * The knowledge base: image-text pairs embedded by a frozen encoder, stored by a backend (a
 * folder with usearch HNSW indexes today). Other parts of retformer use only the interfaces of
 * types.ts and open KBs by spec through the registry.
 */
import { openKnowledgeBaseSpec } from './registry.ts';
import type { WritableKnowledgeBase } from './types.ts';

export { DEFAULT_KB_DTYPE } from './types.ts';

export { type AddOptions, addPairsCsv, type BuildOptions, buildKnowledgeBase, DEFAULT_BATCH_SIZE, encoderState, openKbEncoder } from './build.ts';
export { FileKnowledgeBase } from './file-kb.ts';
export { DEFAULT_INDEX_PARAMS, type FileKbManifest, KB_FILES, KB_FORMAT_VERSION, LARGE_KB_CONNECTIVITY, LARGE_KB_ROWS, readManifest } from './format.ts';
export { MemoryKnowledgeBase } from './memory.ts';
export { type PairRow, readPairsCsv } from './pairs.ts';
export { createKnowledgeBase, isFolderSpec, kbBackendFor, kbExists, normalizeKbSpec, openKnowledgeBaseSpec } from './registry.ts';
export type {
  EmbeddedPair,
  EncoderFiles,
  KbCreateOptions,
  KbDtype,
  KbManifest,
  KbWriter,
  KnowledgeBase,
  Modality,
  Neighbour,
  PairMeta,
  SearchOptions,
  WritableKnowledgeBase,
  WriteOptions,
} from './types.ts';

/** Open a KB by spec (a folder path, or a backend URL) at its last committed state. */
export function openKnowledgeBase(spec: string): Promise<WritableKnowledgeBase> {
  return openKnowledgeBaseSpec(spec);
}
