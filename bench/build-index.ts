/**
 * bench:build-index — build one modality's HNSW index over the rows a folder KB stores, with
 * other parameters (e.g. M = 32 for a KB built with M = 16), streaming the rows in chunks, and save
 * it to a file; no KB is changed. How the 1M M = 32 image index of docs/interop.md was made
 * (compare it with `bench:ef-sweep --keep-dir`). Builds use every core: run under `nice -n 19`.
 *   nice -n 19 npm run bench:build-index -- --kb /work/kb-1m/kb --connectivity 32 --out image-m32.usearch
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { readManifest } from '../src/kb/format.ts';
import { newHnswIndex } from '../src/kb/hnsw.ts';
import { VectorFile } from '../src/kb/storage.ts';

const cfg = z
  .object({
    kb: z.string(),
    out: z.string(),
    modality: z.enum(['image', 'text']).default('image'),
    connectivity: z.coerce.number().int().min(2),
    expansionAdd: z.coerce.number().int().min(1).optional(),
    threads: z.coerce.number().int().min(0).default(0),
  })
  .parse(
    (() => {
      const v = parseArgs({
        options: { kb: { type: 'string' }, out: { type: 'string' }, modality: { type: 'string' }, connectivity: { type: 'string' }, 'expansion-add': { type: 'string' }, threads: { type: 'string' } },
        strict: true,
      }).values;
      return { ...v, expansionAdd: v['expansion-add'] };
    })(),
  );

const m = readManifest(cfg.kb);
const rows = m.folder.rows;
const file = join(cfg.kb, cfg.modality === 'image' ? m.folder.files.imageVectors : m.folder.files.textVectors);
const fd = openSync(file, 'r');
const source = new VectorFile(fd, file, m.dim, m.dtype);
const params = { ...m.folder.index, connectivity: cfg.connectivity, expansionAdd: cfg.expansionAdd ?? m.folder.index.expansionAdd };
const index = newHnswIndex(m.dim, params, m.dtype);
const start = performance.now();
const step = 50_000;
for (let s = 0; s < rows; s += step) {
  const e = Math.min(rows, s + step);
  const ids = Array.from({ length: e - s }, (_, i) => s + i);
  index.add(BigUint64Array.from(ids, BigInt), source.read(ids), cfg.threads); // keys = row numbers, as the KB's indexes
  process.stderr.write(`${new Date().toISOString()} ${e} / ${rows} rows, ${((performance.now() - start) / 1000).toFixed(0)} s\n`);
}
closeSync(fd);
index.save(cfg.out);
process.stdout.write(`${cfg.out}: ${rows} ${cfg.modality} rows, M ${params.connectivity}, efConstruction ${params.expansionAdd}, ${m.dtype}; built in ${((performance.now() - start) / 1000).toFixed(0)} s\n`);
