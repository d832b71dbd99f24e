import type { Command } from 'commander';
import { z } from 'zod';
import { DEFAULT_PART_SIZE, exportClipRetrieval } from '../../kb/interop/export.ts';
import { importClipRetrieval } from '../../kb/interop/import.ts';
import { KB_DTYPES } from '../../kb/types.ts';
import { HNSW_M_HELP, hnswMOption, intOption } from '../flag-values.ts';
import { parseFlags } from '../parse-flags.ts';


const importSchema = z.object({
  clipRetrieval: z.string(),
  out: z.string(),
  encoder: z.string(),
  dtype: z.enum(KB_DTYPES).optional(),
  hnswM: hnswMOption,
  normalise: z.boolean().default(false),
  batchSize: intOption(1).default(4096),
  threads: intOption(0).default(0),
  quiet: z.boolean().default(false),
  json: z.boolean().default(false),
});

const exportSchema = z.object({
  kb: z.string(),
  clipRetrieval: z.string(),
  partSize: intOption(1).default(DEFAULT_PART_SIZE),
  dtype: z.enum(['f16', 'f32']).optional(),
  quiet: z.boolean().default(false),
  json: z.boolean().default(false),
});

/** `kb import` and `kb export`: clip-retrieval's embedding folders in and out (docs/interop.md). */
export function registerKbInteropCommands(kb: Command): void {
  kb.command('import')
    .description('Create a KB from precomputed embeddings in clip-retrieval layout (img_emb/, text_emb/, metadata/); atomic')
    .requiredOption('--clip-retrieval <dir>', 'folder with img_emb/img_emb_<N>.npy, text_emb/text_emb_<N>.npy, metadata/metadata_<N>.parquet')
    .requiredOption('--out <kb>', 'new knowledge base (folder)')
    .requiredOption('--encoder <spec>', 'the encoder that produced the vectors, e.g. onnx:<dir> (its dimension must match)')
    .option('--dtype <dtype>', 'vector storage precision: f32 | f16 | i8 (default: the backend default)')
    .option('--hnsw-m <n>', HNSW_M_HELP)
    .option('--normalise', 'normalise rows that are not unit length instead of refusing them')
    .option('--batch-size <n>', 'pairs per write batch (bounds memory)', '4096')
    .option('--threads <n>', 'HNSW insertion threads: 0 (default) uses all cores, 1 gives the same index on every run (slower)', '0')
    .option('--quiet', 'no progress bar')
    .option('--json', 'print the manifest as JSON')
    .action(async (raw) => {
      const o = parseFlags(importSchema, raw);
      const m = await importClipRetrieval({
        dir: o.clipRetrieval,
        out: o.out,
        encoderSpec: o.encoder,
        dtype: o.dtype,
        connectivity: o.hnswM,
        normalise: o.normalise,
        batchSize: o.batchSize,
        indexThreads: o.threads,
        quiet: o.quiet || o.json,
      });
      if (o.json) process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
      else process.stdout.write(`imported ${o.clipRetrieval} into ${o.out}: ${m.count} pairs, dim ${m.dim}, ${m.dtype}, encoder ${m.encoder.id}\n`);
    });

  kb.command('export')
    .description('Write every live pair of a KB in clip-retrieval layout (npy + parquet parts)')
    .requiredOption('--kb <kb>', 'knowledge base')
    .requiredOption('--clip-retrieval <dir>', 'new folder to write')
    .option('--part-size <n>', 'pairs per part', String(DEFAULT_PART_SIZE))
    .option('--dtype <dtype>', 'npy precision: f16 | f32 (default: the KB dtype; i8 KBs export f32)')
    .option('--quiet', 'no progress bar')
    .option('--json', 'print a JSON summary')
    .action(async (raw) => {
      const o = parseFlags(exportSchema, raw);
      const r = await exportClipRetrieval({ kb: o.kb, out: o.clipRetrieval, partSize: o.partSize, dtype: o.dtype, quiet: o.quiet || o.json });
      if (o.json) process.stdout.write(`${JSON.stringify({ out: o.clipRetrieval, ...r })}\n`);
      else process.stdout.write(`exported ${r.rows} pairs of ${o.kb} to ${o.clipRetrieval}: ${r.parts} part(s), <${r.dtype}\n`);
    });
}
