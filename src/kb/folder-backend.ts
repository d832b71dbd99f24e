import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FileKnowledgeBase } from './file-kb.ts';
import { KB_FILES } from './format.ts';
import type { KbBackend } from './types.ts';

/** Is the spec a folder path (anything that is not a URL such as postgres://...)? */
export function isFolderSpec(spec: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:\/\//i.test(spec) && !/^pg:/i.test(spec);
}

/** The file backend: a KB is a folder (usearch HNSW indexes, vectors and metadata files; format.ts). */
export const folderBackend: KbBackend = {
  name: 'folder',
  accepts: isFolderSpec,
  open: (spec) => FileKnowledgeBase.open(spec),
  create: (spec, options) => FileKnowledgeBase.create(spec, options),
  exists: async (spec) => existsSync(join(resolve(spec), KB_FILES.manifest)),
};
