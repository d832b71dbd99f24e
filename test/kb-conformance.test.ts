import { join } from 'node:path';
import { after } from 'node:test';
import { KB_DTYPES } from '../src/kb/types.ts';
import { conformanceDir, removeConformanceDirs, runKbConformance } from './helpers/kb-conformance.ts';

after(removeConformanceDirs);

// The file backend (usearch HNSW, approximate: recall is checked, not exact equality).
// MemoryKnowledgeBase is read-only (no writer): it does not run this suite.
let n = 0;
runKbConformance({
  name: 'folder',
  newSpec: () => join(conformanceDir(), `kb-${n++}`),
  exact: false,
  dtypes: KB_DTYPES,
});
