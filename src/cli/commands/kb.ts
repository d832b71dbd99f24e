import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { createEncoder, parseEncoderSpec } from '../../encoders/registry.ts';
import type { Encoder } from '../../encoders/types.ts';
import { addPairsCsv, buildKnowledgeBase, DEFAULT_BATCH_SIZE, DEFAULT_KB_DTYPE, FileKnowledgeBase, LARGE_KB_CONNECTIVITY, LARGE_KB_ROWS, openKnowledgeBase } from '../../kb/index.ts';
import { DEFAULT_TEXT_TEMPLATE } from '../../kb/sources.ts';
import { KB_DTYPES, type KbManifest, type Neighbour, type WritableKnowledgeBase } from '../../kb/types.ts';
import { RetformerError } from '../../util/errors.ts';
import { HNSW_M_HELP, hnswMOption, intOption } from '../flag-values.ts';
import { parseFlags } from '../parse-flags.ts';
import { registerKbInteropCommands } from './kb-interop.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

const buildSchema = z.object({
  pairs: z.string().optional(),
  fromTrain: z.string().optional(),
  textTemplate: z.string().optional(),
  out: z.string(),
  encoder: z.string().default('embedded'),
  seed: intOption(0).default(0),
  batchSize: intOption(1).default(DEFAULT_BATCH_SIZE),
  threads: intOption(0).default(1),
  dtype: z.enum(KB_DTYPES).default(DEFAULT_KB_DTYPE),
  hnswM: hnswMOption,
  quiet: z.boolean().default(false),
  json: z.boolean().default(false),
});

const compactSchema = z.object({ kb: z.string(), threads: intOption(0).default(1), hnswM: hnswMOption, json: z.boolean().default(false) });

const addSchema = z.object({
  kb: z.string(),
  pairs: z.string(),
  allowNewLabels: z.boolean().default(false),
  batchSize: intOption(1).default(DEFAULT_BATCH_SIZE),
  threads: intOption(0).default(1),
  quiet: z.boolean().default(false),
  json: z.boolean().default(false),
});

const removeSchema = z.object({ kb: z.string(), id: z.array(z.string()).default([]), idsFile: z.string().optional(), json: z.boolean().default(false) });

const searchSchema = z.object({
  kb: z.string(),
  image: z.string().optional(),
  text: z.string().optional(),
  k: intOption(1).default(32),
  modality: z.enum(['image', 'text']).optional(),
  excludeId: z.array(z.string()).default([]),
  ef: intOption(1).optional(),
  encoder: z.string().optional(),
  json: z.boolean().default(false),
});

/** From this many rows `kb stats` suggests laying out an index written in insertion order (at 1M it searched a third faster laid out). */
const LAYOUT_HINT_ROWS = 100_000;

function printManifestSummary(kb: WritableKnowledgeBase, diskBytes: number | undefined): void {
  const m = kb.manifest;
  const labels = (m.labels as string[] | undefined) ?? [];
  const lines = [
    `knowledge base  ${kb.spec}`,
    `format          v${m.formatVersion}, generation ${m.generation}${typeof m.kbId === 'string' ? `, id ${m.kbId}` : ''}`,
    `encoder         ${m.encoder.id} (${m.encoder.kind}), checksum ${String(m.encoderChecksum)}`,
    `vectors         ${m.count} live pairs, dim ${m.dim}, ${m.dtype}`,
    `labels          ${labels.length}${labels.length > 0 ? ` (${labels.slice(0, 10).join(', ')}${labels.length > 10 ? ', ...' : ''})` : ''}`,
  ];
  if (kb instanceof FileKnowledgeBase) {
    const f = kb.manifest.folder;
    lines.push(
      `rows            ${f.rows} (${f.removed} removed${f.removed > 0 ? '; retformer kb compact drops them' : ''})`,
      `index           HNSW ${f.index.metric} ${m.dtype}, connectivity ${f.index.connectivity}, expansion add ${f.index.expansionAdd} / search ${f.index.expansionSearch}; searches use ef ${kb.defaultEf} at ${f.rows} rows unless --ef${f.rows > LARGE_KB_ROWS && f.index.connectivity < LARGE_KB_CONNECTIVITY ? `\n                (more than ${LARGE_KB_ROWS} rows on an M = ${f.index.connectivity} graph: retformer kb compact --hnsw-m ${LARGE_KB_CONNECTIVITY} rebuilds it denser, for recall at a narrower ef)` : ''}`,
      `index layout    ${f.index.layout === 'locality' ? 'slots in graph order (laid out for locality)' : `slots in insertion order (not laid out for locality)${f.rows >= LAYOUT_HINT_ROWS ? '; retformer kb compact lays them out (without a rebuild if nothing was removed), for about a third faster searches at 1M pairs' : ''}`}`,
      `files           ${[f.files.imageIndex, f.files.textIndex, f.files.tombstones].filter(Boolean).join(', ')}`,
    );
  }
  if (diskBytes !== undefined) lines.push(`disk            ${(diskBytes / 1024 / 1024).toFixed(2)} MiB${m.count > 0 ? `, ${Math.round(diskBytes / m.count)} bytes per pair` : ''}`);
  lines.push(`created         ${m.createdAt}`, `updated         ${m.updatedAt}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

function diskUsage(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const st = statSync(join(dir, name));
    total += st.isDirectory() ? diskUsage(join(dir, name)) : st.size;
  }
  return total;
}

function printNeighbours(list: Neighbour[]): void {
  if (list.length === 0) {
    process.stdout.write('(no neighbours)\n');
    return;
  }
  for (const [i, n] of list.entries()) {
    const label = n.label === undefined ? '' : ` [${n.label}]`;
    process.stdout.write(`${String(i + 1).padStart(3)}  ${n.similarity.toFixed(4)}  ${n.id}${label}  "${n.text}"  ${n.source}\n`);
  }
}

/** The encoder for a search query: the KB's own, or the one --encoder names (a different one is refused by the KB). */
async function queryEncoder(kb: WritableKnowledgeBase, manifest: KbManifest, spec: string | undefined): Promise<Encoder> {
  if (spec === undefined) return kb.openEncoder();
  const parsed = parseEncoderSpec(spec);
  if (parsed.kind === 'embedded') {
    if (manifest.encoder.kind !== 'embedded') throw new RetformerError(`--encoder embedded differs from the knowledge base's encoder "${manifest.encoder.id}" (${manifest.encoder.kind}); drop --encoder to use the KB's own`);
    return kb.openEncoder();
  }
  return createEncoder(parsed, {});
}

/** The pairs CSV `kb build` embeds: --pairs as given, or one written from --from-train (plus --pairs) into a temp folder. */
async function pairsSource(o: z.infer<typeof buildSchema>): Promise<{ csv: string; cleanup: () => void }> {
  if (o.fromTrain === undefined) {
    if (o.pairs === undefined) throw new RetformerError('kb build: give --pairs CSV, --from-train CSV, or both');
    if (o.textTemplate !== undefined) throw new RetformerError('kb build: --text-template applies only with --from-train');
    return { csv: o.pairs, cleanup: () => {} };
  }
  const { writeDownstreamPairs, concatPairsCsv } = await import('../../kb/sources.ts');
  const dir = mkdtempSync(join(tmpdir(), 'retformer-pairs-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    const downstream = join(dir, 'downstream.csv');
    writeDownstreamPairs(o.fromTrain, downstream, { textTemplate: o.textTemplate });
    if (o.pairs === undefined) return { csv: downstream, cleanup };
    const all = join(dir, 'all.csv');
    concatPairsCsv([downstream, o.pairs], all);
    return { csv: all, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

export function registerKbCommands(program: Command): void {
  const kb = program.command('kb').description('Image-text knowledge base: build, add, remove, search, stats, compact');

  kb.command('build')
    .description('Embed every (image, text) pair of a CSV with a frozen encoder and index both modalities')
    .option('--pairs <csv>', 'pairs CSV: header path,text[,id][,label]; paths relative to the CSV folder')
    .option('--from-train <csv>', 'a downstream KB from a training manifest: each image with its text column, or the --text-template filled with its label (with --pairs too: downstream + those pairs, the "all" source)')
    .option('--text-template <t>', `text for training rows without one; {label} is the class name (default "${DEFAULT_TEXT_TEMPLATE}")`)
    .requiredOption('--out <dir>', 'new knowledge base folder (must not exist)')
    .option('--encoder <spec>', 'embedded | pixels | onnx:<dir>[#variant]', 'embedded')
    .option('--seed <n>', 'seed for encoders that fit', '0')
    .option('--batch-size <n>', 'pairs embedded per batch (bounds memory)', String(DEFAULT_BATCH_SIZE))
    .option('--threads <n>', 'HNSW insertion threads: 1 gives the same index on every run, 0 uses all cores (faster, not reproducible)', '1')
    .option('--dtype <t>', 'storage precision of vectors and indexes: f16 (default) | f32 (twice the bytes) | i8 (half of f16; candidates re-ranked)', DEFAULT_KB_DTYPE)
    .option('--hnsw-m <n>', HNSW_M_HELP)
    .option('--quiet', 'no progress bar')
    .option('--json', 'print the manifest as JSON')
    .action(async (raw) => {
      const o = parseFlags(buildSchema, raw);
      const source = await pairsSource(o);
      let m: KbManifest;
      try {
        m = await buildKnowledgeBase({ pairsCsv: source.csv, out: o.out, encoderSpec: o.encoder, seed: o.seed, batchSize: o.batchSize, indexThreads: o.threads, dtype: o.dtype, connectivity: o.hnswM, quiet: o.quiet || o.json });
      } finally {
        source.cleanup();
      }
      if (o.json) process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
      else process.stdout.write(`built ${o.out}: ${m.count} pairs, dim ${m.dim}, encoder ${m.encoder.id}\n`);
    });

  kb.command('add')
    .description('Append pairs from a CSV (old rows are not re-embedded); atomic')
    .requiredOption('--kb <dir>', 'knowledge base folder')
    .requiredOption('--pairs <csv>', 'pairs CSV (same format as kb build)')
    .option('--allow-new-labels', 'accept labels the KB has not seen')
    .option('--batch-size <n>', 'pairs embedded per batch', String(DEFAULT_BATCH_SIZE))
    .option('--threads <n>', 'HNSW insertion threads: 1 gives the same index on every run, 0 uses all cores (faster, not reproducible)', '1')
    .option('--quiet', 'no progress bar')
    .option('--json', 'print the new manifest as JSON')
    .action(async (raw) => {
      const o = parseFlags(addSchema, raw);
      const { manifest: m, added } = await addPairsCsv(o.kb, o.pairs, { allowNewLabels: o.allowNewLabels, batchSize: o.batchSize, indexThreads: o.threads, quiet: o.quiet || o.json });
      if (o.json) process.stdout.write(`${JSON.stringify({ ...m, added }, null, 2)}\n`);
      else process.stdout.write(`added ${added} pairs to ${o.kb}: ${m.count} pairs, generation ${m.generation}\n`);
    });

  kb.command('remove')
    .description('Remove pairs by id; atomic')
    .requiredOption('--kb <dir>', 'knowledge base folder')
    .option('--id <id>', 'pair id to remove (repeatable)', collect)
    .option('--ids-file <file>', 'file with one id per line')
    .option('--json', 'print the new manifest as JSON')
    .action(async (raw) => {
      const o = parseFlags(removeSchema, raw);
      const ids = [...o.id];
      if (o.idsFile !== undefined) {
        let text: string;
        try {
          text = readFileSync(o.idsFile, 'utf8');
        } catch {
          throw new RetformerError(`${o.idsFile}: cannot read ids file`);
        }
        ids.push(...text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== ''));
      }
      if (ids.length === 0) throw new RetformerError('kb remove: give --id ID (repeatable) or --ids-file FILE');
      const store = await openKnowledgeBase(o.kb);
      try {
        const writer = await store.beginWrite();
        try {
          await writer.remove(ids);
        } catch (err) {
          await writer.abort();
          throw err;
        }
        const removed = writer.pending.removed;
        const m = await writer.commit();
        if (o.json) process.stdout.write(`${JSON.stringify({ ...m, removed }, null, 2)}\n`);
        else process.stdout.write(`removed ${removed} pairs from ${o.kb}: ${m.count} pairs, generation ${m.generation}\n`);
      } finally {
        await store.close();
      }
    });

  kb.command('search')
    .description('Nearest pairs of an image or a text (image-to-image, image-to-text, text-to-text, text-to-image)')
    .requiredOption('--kb <dir>', 'knowledge base folder')
    .option('--image <file>', 'query image')
    .option('--text <text>', 'query text')
    .option('-k, --k <n>', 'neighbours', '32')
    .option('--modality <m>', 'index to search: image | text (default: the query modality)')
    .option('--exclude-id <id>', 'pair id the query must not retrieve (repeatable; the leakage guard)', collect)
    .option('--ef <n>', "HNSW search breadth (default: grows with the KB's rows, see kb stats)")
    .option('--encoder <spec>', 'encoder of the query; refused if it is not the KB encoder')
    .option('--json', 'print JSON')
    .action(async (raw) => {
      const o = parseFlags(searchSchema, raw);
      if ((o.image === undefined) === (o.text === undefined)) throw new RetformerError('kb search: give exactly one of --image FILE or --text "..."');
      const store = await openKnowledgeBase(o.kb);
      const encoder = await queryEncoder(store, store.manifest, o.encoder);
      try {
        const query = o.image !== undefined ? await encoder.embedImages([o.image]) : await encoder.embedTexts([o.text as string]); // [1, dim]
        const modality = o.modality ?? (o.image !== undefined ? 'image' : 'text');
        const [list] = await store.search(query, {
          k: o.k,
          modality,
          queryEncoderId: encoder.id,
          excludeIds: o.excludeId.length > 0 ? [new Set(o.excludeId)] : undefined,
          ef: o.ef,
        });
        if (o.json) {
          const q = o.image !== undefined ? { image: o.image } : { text: o.text };
          process.stdout.write(`${JSON.stringify({ query: q, modality, k: o.k, encoder: encoder.id, neighbours: list }, null, 2)}\n`);
        } else printNeighbours(list);
      } finally {
        await encoder.close();
        await store.close();
      }
    });

  kb.command('stats')
    .description('Print the manifest: format version, encoder id and checksum, dim, dtype, count, index parameters')
    .requiredOption('--kb <dir>', 'knowledge base folder')
    .option('--json', 'print JSON')
    .action(async (raw: { kb: string; json?: boolean }) => {
      const store = await openKnowledgeBase(raw.kb);
      try {
        const disk = store instanceof FileKnowledgeBase ? diskUsage(store.dir) : undefined;
        const perPair = disk !== undefined && store.size > 0 ? Math.round(disk / store.size) : undefined;
        if (raw.json) process.stdout.write(`${JSON.stringify({ ...store.manifest, spec: store.spec, diskBytes: disk, bytesPerPair: perPair, ...(store instanceof FileKnowledgeBase ? { defaultEf: store.defaultEf } : {}) }, null, 2)}\n`);
        else printManifestSummary(store, disk);
      } finally {
        await store.close();
      }
    });

  kb.command('compact')
    .description('Rewrite vectors, metadata and indexes without removed pairs; atomic. Row keys are renumbered (the generation changes, so cached retrievals are recomputed)')
    .requiredOption('--kb <dir>', 'knowledge base folder')
    .option('--threads <n>', 'HNSW insertion threads: 1 gives the same index on every run, 0 uses all cores', '1')
    .option('--hnsw-m <n>', 'rebuild the HNSW graphs with this degree M (folder KBs; default: keep the KB\'s M; 32 suits more than 250,000 pairs: docs/kb-format.md)')
    .option('--json', 'print the new manifest as JSON')
    .action(async (raw) => {
      const o = parseFlags(compactSchema, raw);
      const store = await openKnowledgeBase(o.kb);
      try {
        if (o.hnswM !== undefined && !(store instanceof FileKnowledgeBase)) throw new RetformerError(`${o.kb}: --hnsw-m applies to folder KBs (a Postgres KB's HNSW index takes its m from the KB's manifest; rebuild it with kb import/build --hnsw-m)`);
        const before = store instanceof FileKnowledgeBase ? store.rows : undefined;
        const m = store instanceof FileKnowledgeBase ? await store.compact({ indexThreads: o.threads, connectivity: o.hnswM }) : await store.compact();
        if (o.json) process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
        else process.stdout.write(`compacted ${o.kb}: ${m.count} pairs${before !== undefined ? ` (${before - m.count} removed rows dropped)` : ''}, generation ${m.generation}\n`);
      } finally {
        await store.close();
      }
    });

  registerKbInteropCommands(kb); // kb import / kb export (clip-retrieval layout)
}
