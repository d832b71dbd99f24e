import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { decodeVectors, encodeVectors } from '../src/kb/codec.ts';
import { rerankMatches } from '../src/kb/rerank.ts';
import { VectorFile } from '../src/kb/storage.ts';
import type { KbDtype } from '../src/kb/types.ts';
import { Rng } from '../src/util/rng.ts';
import { removeTempDirs, tempDir } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

const unitRows = (n: number, dim: number, rng: Rng) => {
  const out = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let d = 0; d < dim; d++) {
      out[r * dim + d] = rng.normal();
      s += out[r * dim + d] ** 2;
    }
    for (let d = 0; d < dim; d++) out[r * dim + d] /= Math.sqrt(s);
  }
  return out;
};

for (const dtype of ['i8', 'f16'] as KbDtype[]) {
  test(`${dtype}: re-ranking orders the candidates by their cosine to the query with the stored (decoded) rows, best first, and keeps the best`, () => {
    const dim = 24;
    const rows = 40;
    const rng = new Rng(5);
    const data = unitRows(rows, dim, rng); // [rows, dim]
    const file = join(tempDir(), `rows.${dtype}`);
    writeFileSync(file, encodeVectors(data, dtype, dim));
    const fd = openSync(file, 'r');
    try {
      const store = new VectorFile(fd, file, dim, dtype);
      const decoded = decodeVectors(store.readRaw(Array.from({ length: rows }, (_, r) => r)), dtype, dim); // the definition: re-normalised rows
      const queries = unitRows(2, dim, rng); // [2, dim]
      // two queries, 10 candidates each in a scrambled order (the coarse index's ranking), one query with only 7 found
      const stride = 10;
      const keys = new BigUint64Array(2 * stride);
      const picks = [Array.from({ length: 10 }, (_, j) => (j * 7 + 3) % rows), Array.from({ length: 7 }, (_, j) => (j * 11 + 5) % rows)];
      picks.forEach((p, q) => {
        p.forEach((r, j) => {
          keys[q * stride + j] = BigInt(r);
        });
      });
      const out = rerankMatches({ keys, distances: new Float32Array(2 * stride), counts: [10, 7], stride }, queries, dim, store, 5);
      assert.deepEqual(out.counts, [5, 5]);
      for (let q = 0; q < 2; q++) {
        const sim = (r: number) => {
          let s = 0;
          for (let d = 0; d < dim; d++) s += decoded[r * dim + d] * queries[q * dim + d];
          return s;
        };
        const expected = [...picks[q]].sort((a, b) => sim(b) - sim(a)).slice(0, 5);
        assert.deepEqual(Array.from(out.keys.subarray(q * 5, q * 5 + 5), Number), expected, `query ${q}: order`);
        expected.forEach((r, j) => {
          assert.ok(Math.abs(out.distances[q * 5 + j] - (1 - sim(r))) < 1e-6, `query ${q}, rank ${j}: distance`);
        });
      }
    } finally {
      closeSync(fd);
    }
  });
}
