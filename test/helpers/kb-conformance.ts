import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createEncoder } from '../../src/encoders/registry.ts';
import { encoderState } from '../../src/kb/build.ts';
import { createKnowledgeBase, openKnowledgeBaseSpec } from '../../src/kb/registry.ts';
import { DEFAULT_KB_DTYPE, type EmbeddedPair, type EncoderFiles, type KbCreateOptions, type KbDtype, type WritableKnowledgeBase } from '../../src/kb/types.ts';
import { Rng } from '../../src/util/rng.ts';

/**
 * The conformance suite every KB backend runs (file folders, Postgres, ...): the promises of
 * src/kb/types.ts checked through the backend-neutral API only (registry + WritableKnowledgeBase
 * + KbWriter). A backend test calls `runKbConformance` with a factory of fresh specs.
 */
export interface KbConformanceFactory {
  /** Shown in test names. */
  name: string;
  /** A spec where no KB exists yet (a new folder path, a new table); each call a different one. */
  newSpec(): string | Promise<string>;
  /** Does search return the exact top-k (brute force)? Otherwise an approximate index: recall@k is checked. */
  exact: boolean;
  /** Dtypes the backend supports for `createKnowledgeBase` (default: just f32). */
  dtypes?: readonly KbDtype[];
  /** Open the same KB through a second, independent handle (default: the registry). */
  open?(spec: string): Promise<WritableKnowledgeBase>;
}

const DIM = 128; // the pixels encoder's dimension: its descriptor and (empty) saved state are real
const N = 240;
const CLUSTERS = 12;

function unit(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = 1 / Math.sqrt(s);
  return v.map((x) => x * inv);
}

/** Seeded clustered pairs: ids "c<i>", label "L<cluster>", text vector near the image vector. */
export function conformancePairs(n: number, seed: number, prefix = 'c'): EmbeddedPair[] {
  const rng = new Rng(seed);
  const centres = Array.from({ length: CLUSTERS }, () => unit(Float32Array.from({ length: DIM }, () => rng.normal())));
  return Array.from({ length: n }, (_, i) => {
    const c = i % CLUSTERS;
    const image = unit(centres[c].map((x) => x + 0.35 * rng.normal()));
    return {
      meta: { id: `${prefix}${i}`, text: `pair ${prefix}${i}`, source: `/synthetic/${prefix}${i}.png`, label: `L${c}` },
      imageVector: image,
      textVector: unit(image.map((x) => x + 0.2 * rng.normal())),
    };
  });
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let j = 0; j < a.length; j++) s += a[j] * b[j];
  return s;
}

/** Exact top-k ids of a query among live pairs (brute force). */
function exactTopK(query: Float32Array, pairs: readonly EmbeddedPair[], k: number, exclude?: ReadonlySet<string>): string[] {
  return pairs
    .filter((p) => !exclude?.has(p.meta.id))
    .map((p) => ({ id: p.meta.id, s: dot(query, p.imageVector) }))
    .sort((a, b) => b.s - a.s)
    .slice(0, k)
    .map((x) => x.id);
}

let encoderCache: { options: Omit<KbCreateOptions, 'dtype'>; id: string } | undefined;

async function createOptions(): Promise<{ options: Omit<KbCreateOptions, 'dtype'>; id: string }> {
  if (!encoderCache) {
    const encoder = await createEncoder({ kind: 'pixels' });
    const state = await encoderState(encoder);
    await encoder.close();
    encoderCache = { options: { encoder: state.descriptor, encoderChecksum: state.checksum, encoderFiles: state.files, dim: DIM }, id: state.descriptor.id };
  }
  return encoderCache;
}

function filesEqual(a: EncoderFiles, b: EncoderFiles): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || Buffer.compare(Buffer.from(v), Buffer.from(w)) !== 0) return false;
  }
  return true;
}

export function runKbConformance(factory: KbConformanceFactory): void {
  const open = factory.open ?? openKnowledgeBaseSpec;

  /** A committed KB holding `pairs`, and the handles to close. */
  async function committed(pairs: readonly EmbeddedPair[], dtype?: KbDtype): Promise<{ spec: string; kb: WritableKnowledgeBase; encoderId: string }> {
    const { options, id } = await createOptions();
    const spec = await factory.newSpec();
    const kb = await createKnowledgeBase(spec, { ...options, dtype });
    const w = await kb.beginWrite({ allowNewLabels: true });
    await w.append(pairs);
    const m = await w.commit();
    assert.equal(m.count, pairs.length);
    return { spec, kb, encoderId: id };
  }

  describe(`KB conformance: ${factory.name}`, () => {
    test('create: nothing visible before the first commit; then size, dim, encoder, labels; the encoder round-trips', async () => {
      const { options, id } = await createOptions();
      const spec = await factory.newSpec();
      const kb = await createKnowledgeBase(spec, options);
      await assert.rejects(open(spec), 'no KB at the spec before the first commit');
      const w = await kb.beginWrite({ allowNewLabels: true });
      const pairs = conformancePairs(30, 1);
      await w.append(pairs.slice(0, 10));
      await w.append(pairs.slice(10));
      assert.deepEqual(w.pending, { added: 30, removed: 0 });
      const m = await w.commit();
      assert.equal(m.generation, 1);
      const reader = await open(spec);
      try {
        assert.equal(reader.size, 30);
        assert.equal(reader.dim, DIM);
        assert.equal(reader.encoderId, id);
        assert.equal(reader.manifest.count, 30);
        assert.equal(reader.manifest.dtype, DEFAULT_KB_DTYPE);
        assert.equal(reader.manifest.index, undefined, 'no backend-specific index fields in the neutral manifest');
        assert.ok(filesEqual(await reader.encoderFiles(), options.encoderFiles), 'encoder files as given at creation');
        const encoder = await reader.openEncoder();
        assert.equal(encoder.id, id);
        await encoder.close();
        assert.deepEqual((await reader.meta([3]))[0], pairs[3].meta);
        const v = await reader.vectors([3, 4], 'text'); // [2, DIM]
        const tolerance = DEFAULT_KB_DTYPE === 'f32' ? 1e-6 : 1e-3; // stored at the default dtype
        for (let j = 0; j < DIM; j++) assert.ok(Math.abs(v[DIM + j] - pairs[4].textVector[j]) < tolerance);
      } finally {
        await reader.close();
        await kb.close();
      }
    });

    test('search: best first, the stored vector finds itself, top-k agrees with exact search; text index too', async () => {
      const pairs = conformancePairs(N, 2);
      const { kb, encoderId } = await committed(pairs);
      try {
        const queries = conformancePairs(20, 3, 'q');
        const k = 10;
        let hits = 0;
        for (const q of queries) {
          const [found] = await kb.search(q.imageVector, { k, queryEncoderId: encoderId });
          assert.equal(found.length, k);
          for (let i = 1; i < found.length; i++) assert.ok(found[i - 1].similarity >= found[i].similarity - 1e-6, 'best first');
          const truth = exactTopK(q.imageVector, pairs, k);
          if (factory.exact) assert.deepEqual(found.map((n) => n.id), truth);
          hits += found.filter((n) => truth.includes(n.id)).length;
          const first = found[0];
          assert.ok(Math.abs(first.similarity - dot(q.imageVector, pairs[Number(first.id.slice(1))].imageVector)) < 1e-4, 'similarity is the cosine');
        }
        assert.ok(hits / (queries.length * k) >= 0.95, `recall@${k} ${hits / (queries.length * k)}`);
        const self = await kb.search(pairs[17].imageVector, { k: 1, queryEncoderId: encoderId });
        assert.equal(self[0][0].id, 'c17');
        assert.ok(self[0][0].similarity > 0.999);
        assert.equal(self[0][0].label, 'L5');
        const viaText = await kb.search(pairs[17].textVector, { k: 1, modality: 'text', queryEncoderId: encoderId });
        assert.equal(viaText[0][0].id, 'c17');
        // a batch of queries answers each like a single query
        const batch = new Float32Array(3 * DIM);
        for (let i = 0; i < 3; i++) batch.set(pairs[i * 7].imageVector, i * DIM);
        const lists = await kb.search(batch, { k: 3, queryEncoderId: encoderId });
        assert.deepEqual(lists.map((l) => l[0].id), ['c0', 'c7', 'c14']);
      } finally {
        await kb.close();
      }
    });

    test('leakage guard: excluded ids are never returned and k still come back', async () => {
      const pairs = conformancePairs(N, 4);
      const { kb, encoderId } = await committed(pairs);
      try {
        const q = pairs[9].imageVector;
        const exclude = new Set(exactTopK(q, pairs, 5));
        const [found] = await kb.search(q, { k: 8, queryEncoderId: encoderId, excludeIds: [exclude] });
        assert.equal(found.length, 8);
        assert.ok(!found.some((n) => exclude.has(n.id)));
        if (factory.exact) assert.deepEqual(found.map((n) => n.id), exactTopK(q, pairs, 8, exclude));
      } finally {
        await kb.close();
      }
    });

    test('add and remove: generation +1 per commit, removed pairs never returned, unknown id refused, bad vectors refused', async () => {
      const pairs = conformancePairs(60, 5);
      const { spec, kb, encoderId } = await committed(pairs);
      try {
        const g1 = kb.manifest.generation;
        const more = conformancePairs(12, 6, 'n');
        let w = await kb.beginWrite({ allowNewLabels: true });
        await w.append(more);
        let m = await w.commit();
        assert.equal(m.generation, g1 + 1);
        assert.equal(kb.size, 72);
        const [found] = await kb.search(more[3].imageVector, { k: 1, queryEncoderId: encoderId });
        assert.equal(found[0].id, 'n3');

        w = await kb.beginWrite();
        await assert.rejects(w.remove(['c1', 'nope']), /unknown id "nope"/);
        await w.abort();
        assert.equal(kb.size, 72, 'a refused remove changes nothing');

        w = await kb.beginWrite();
        await w.remove(['c2', 'n3']);
        assert.deepEqual(w.pending, { added: 0, removed: 2 });
        m = await w.commit();
        assert.equal(m.generation, g1 + 2);
        assert.equal(m.count, 70);
        const reader = await open(spec);
        try {
          assert.equal(reader.size, 70);
          const all = await reader.search(more[3].imageVector, { k: 70, queryEncoderId: encoderId });
          assert.ok(!all[0].some((n) => n.id === 'c2' || n.id === 'n3'), 'removed pairs never come back');
          assert.equal(new Set(all[0].map((n) => n.id)).size, all[0].length);
          const live = await reader.liveRows();
          assert.equal(live.length, 70, 'liveRows lists every live pair once');
          const liveIds = (await reader.meta(live)).map((p) => p.id);
          assert.ok(!liveIds.includes('c2') && !liveIds.includes('n3'), 'liveRows leaves removed pairs out');
          assert.deepEqual(live, [...live].sort((a, b) => a - b), 'ascending');
        } finally {
          await reader.close();
        }

        w = await kb.beginWrite({ allowNewLabels: true });
        await assert.rejects(w.append([{ ...more[0] }]), /duplicate id "n0"/);
        const bad = { meta: { id: 'bad', text: 't', source: 's' }, imageVector: new Float32Array(DIM - 1).fill(1), textVector: more[0].textVector };
        await assert.rejects(w.append([bad]), /wrong dimension/);
        const nan = more[0].imageVector.slice();
        nan[2] = Number.NaN;
        await assert.rejects(w.append([{ meta: { id: 'nan', text: 't', source: 's' }, imageVector: nan, textVector: nan }]), /NaN/);
        // a removed id may be added again
        await w.append([{ ...more[3] }]);
        m = await w.commit();
        assert.equal(m.count, 71);
        const [back] = await kb.search(more[3].imageVector, { k: 1, queryEncoderId: encoderId });
        assert.equal(back[0].id, 'n3');
      } finally {
        await kb.close();
      }
    });

    test('unknown labels are refused unless allowed', async () => {
      const { kb } = await committed(conformancePairs(24, 7));
      try {
        const w = await kb.beginWrite();
        const odd = conformancePairs(1, 8, 'u')[0];
        await assert.rejects(w.append([{ ...odd, meta: { ...odd.meta, label: 'never-seen' } }], () => 'extra.csv:2'), /extra\.csv:2: unknown label "never-seen"/);
        await w.abort();
      } finally {
        await kb.close();
      }
    });

    test('a query from another encoder is refused naming both ids', async () => {
      const { kb, encoderId } = await committed(conformancePairs(24, 9));
      try {
        await assert.rejects(kb.search(conformancePairs(1, 10)[0].imageVector, { k: 3, queryEncoderId: 'other-encoder' }), (err: Error) => err.message.includes('other-encoder') && err.message.includes(encoderId));
      } finally {
        await kb.close();
      }
    });

    test('writer isolation: readers see the old generation until commit; abort leaves nothing; a second writer is refused', async () => {
      const pairs = conformancePairs(40, 11);
      const { spec, kb, encoderId } = await committed(pairs);
      const reader = await open(spec);
      try {
        const g = reader.manifest.generation;
        const more = conformancePairs(8, 12, 'w');
        const w = await kb.beginWrite({ allowNewLabels: true });
        await w.append(more);
        await w.remove(['c0']);
        const other = await open(spec);
        try {
          await assert.rejects(other.beginWrite(), /writing/, 'a second writer is refused while one is open');
          assert.equal(other.size, 40, 'a KB opened during the write sees the committed state');
        } finally {
          await other.close();
        }
        await reader.refresh();
        assert.equal(reader.manifest.generation, g);
        assert.equal(reader.size, 40);
        const [during] = await reader.search(more[1].imageVector, { k: 48, queryEncoderId: encoderId });
        assert.ok(!during.some((n) => n.id.startsWith('w')), 'uncommitted pairs are invisible');
        assert.ok(during.some((n) => n.id === 'c0'), 'an uncommitted remove is invisible');
        await w.commit();
        await reader.refresh();
        assert.equal(reader.manifest.generation, g + 1);
        assert.equal(reader.size, 47);
        const [after] = await reader.search(more[1].imageVector, { k: 1, queryEncoderId: encoderId });
        assert.equal(after[0].id, 'w1');

        // abort: nothing of the transaction stays, and the next writer can start
        const w2 = await kb.beginWrite({ allowNewLabels: true });
        await w2.append(conformancePairs(5, 13, 'x'));
        await w2.remove(['c1']);
        await w2.abort();
        const again = await open(spec);
        try {
          assert.equal(again.manifest.generation, g + 1);
          assert.equal(again.size, 47);
          const [found] = await again.search(conformancePairs(5, 13, 'x')[2].imageVector, { k: 47, queryEncoderId: encoderId });
          assert.ok(!found.some((n) => n.id.startsWith('x')));
          assert.ok(found.some((n) => n.id === 'c1'));
        } finally {
          await again.close();
        }
        const w3 = await kb.beginWrite();
        await w3.remove(['c1']);
        assert.equal((await w3.commit()).count, 46);
      } finally {
        await reader.close();
        await kb.close();
      }
    });

    test('compact: the same answers without removed pairs; the generation changes', async () => {
      const pairs = conformancePairs(N, 14);
      const { spec, kb, encoderId } = await committed(pairs);
      try {
        const w = await kb.beginWrite();
        const gone = pairs.filter((_, i) => i % 3 === 0).map((p) => p.meta.id);
        await w.remove(gone);
        await w.commit();
        const queries = conformancePairs(10, 15, 'q');
        const answer = async (k: WritableKnowledgeBase) => {
          const out: string[][] = [];
          for (const q of queries) out.push((await k.search(q.imageVector, { k: 8, queryEncoderId: encoderId }))[0].map((n) => `${n.id}:${n.similarity.toFixed(4)}`));
          return out;
        };
        const before = await answer(kb);
        const g = kb.manifest.generation;
        const m = await kb.compact();
        assert.ok(m.generation > g, 'compaction bumps the generation (row caches are invalidated)');
        assert.equal(m.count, N - gone.length);
        const reader = await open(spec);
        try {
          assert.equal(reader.size, N - gone.length);
          const after = await answer(reader);
          if (factory.exact) assert.deepEqual(after, before);
          else {
            let same = 0;
            for (let i = 0; i < before.length; i++) same += after[i].filter((x) => before[i].includes(x)).length;
            assert.ok(same / (before.length * 8) >= 0.95, `answers kept: ${same}/${before.length * 8}`);
          }
          // rows returned by search address the pairs they name
          const [top] = await reader.search(pairs[1].imageVector, { k: 1, queryEncoderId: encoderId });
          assert.equal(top[0].id, 'c1');
          assert.equal((await reader.meta([top[0].row]))[0].id, 'c1');
          const v = await reader.vectors([top[0].row], 'image');
          assert.ok(Math.abs(dot(v, pairs[1].imageVector) - 1) < 1e-3);
        } finally {
          await reader.close();
        }
      } finally {
        await kb.close();
      }
    });

    for (const dtype of factory.dtypes ?? []) {
      test(`dtype ${dtype}: stored and searched at that precision, vectors read back close to the originals`, async () => {
        const pairs = conformancePairs(N, 16);
        const { spec, kb, encoderId } = await committed(pairs, dtype);
        try {
          const reader = await open(spec);
          try {
            assert.equal(reader.manifest.dtype, dtype);
            const v = await reader.vectors([5], 'image');
            assert.ok(dot(v, pairs[5].imageVector) > (dtype === 'i8' ? 0.99 : 0.9999), `${dtype} vector close to the original`);
            const [self] = await reader.search(pairs[5].imageVector, { k: 1, queryEncoderId: encoderId });
            assert.equal(self[0].id, 'c5');
          } finally {
            await reader.close();
          }
        } finally {
          await kb.close();
        }
      });
    }
  });
}

/** A temp folder for folder specs; `removeConformanceDirs` deletes them. */
const made: string[] = [];
export function conformanceDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'retformer-kbconf-'));
  made.push(dir);
  return dir;
}
export function removeConformanceDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}
