/**
 * The knowledge base: image-text pairs embedded by a frozen encoder, stored on disk with an HNSW
 * index per modality. Other parts of retformer use only the `KnowledgeBase` interface (types.ts).
 */
import { FileKnowledgeBase } from './file-kb.ts';

export type { AppendOptions } from './appender.ts';
export { type AddOptions, addPairsCsv, type BuildOptions, buildKnowledgeBase, DEFAULT_BATCH_SIZE, openKbEncoder } from './build.ts';
export { FileKnowledgeBase } from './file-kb.ts';
export { initKbFolder } from './init.ts';
export { DEFAULT_INDEX_PARAMS, type FileKbManifest, KB_FILES, KB_FORMAT_VERSION, readManifest } from './format.ts';
export { MemoryKnowledgeBase } from './memory.ts';
export { type PairRow, readPairsCsv } from './pairs.ts';
export type { EmbeddedPair, KbManifest, KnowledgeBase, Modality, Neighbour, PairMeta, SearchOptions } from './types.ts';

/** Open a KB folder at its last committed state (repairing a crashed writer's leftovers first). */
export function openKnowledgeBase(dir: string): Promise<FileKnowledgeBase> {
  return FileKnowledgeBase.open(dir);
}
