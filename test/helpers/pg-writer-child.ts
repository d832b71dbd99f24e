/**
 * A writer process for the crash tests: appends pairs [from, to) of the generated set to the KB at
 * SPEC in batches of 10, then commits; RETFORMER_TEST_CRASH_AT kills it on the way.
 * Usage: node --import tsx test/helpers/pg-writer-child.ts SPEC FROM TO SEED DIM
 */
import { openKnowledgeBaseSpec } from '../../src/kb/registry.ts';
import { clusteredPairs } from './pg-fixtures.ts';

const [spec, from, to, seed, dim] = process.argv.slice(2);
const pairs = clusteredPairs(Number(to), Number(dim), { seed: Number(seed) }).slice(Number(from));
const kb = await openKnowledgeBaseSpec(spec);
const w = await kb.beginWrite();
for (let i = 0; i < pairs.length; i += 10) await w.append(pairs.slice(i, i + 10));
await w.commit();
await kb.close();
