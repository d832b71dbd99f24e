import { createEncoder, parseEncoderSpec } from '../../encoders/registry.ts';
import { RetformerError } from '../../util/errors.ts';
import { startProgress } from '../../util/progress.ts';
import { commitProgress, encoderState } from '../build.ts';
import { createKnowledgeBase } from '../registry.ts';
import type { KbDtype, KbManifest, KbWriter, WriteProgress } from '../types.ts';
import { readClipRetrievalPairs, scanClipRetrieval } from './clip-retrieval.ts';

export interface ClipImportOptions {
  /** The clip-retrieval folder (img_emb/, text_emb/, metadata/). */
  dir: string;
  /** KB spec to create (a folder path, or a URL a registered backend accepts). */
  out: string;
  /** Encoder that produced the vectors (registry syntax, e.g. onnx:DIR); its dimension must match. */
  encoderSpec: string;
  dtype?: KbDtype;
  /** HNSW M (default: 16, or 32 for more than 250k rows; connectivityFor). */
  connectivity?: number;
  /** Pairs per append (bounds memory). */
  batchSize?: number;
  /** HNSW insertion threads: 1 (default) reproducible, 0 all cores (`kb import`'s default). */
  indexThreads?: number;
  /** Told how the commit's index build advances (besides the progress bars). */
  onProgress?: (progress: WriteProgress) => void;
  /** Normalise rows that are not unit length instead of refusing them. */
  normalise?: boolean;
  quiet?: boolean;
}

/**
 * The engine behind `kb import --clip-retrieval`: check the folder's structure, create the KB with
 * the named encoder (dimension checked), stream every part through one write transaction and
 * commit once at the end. Any error (a bad row, a duplicate id) aborts the transaction, and a
 * killed import never committed: nothing is half-imported.
 */
export async function importClipRetrieval(opts: ClipImportOptions): Promise<KbManifest> {
  const scan = await scanClipRetrieval(opts.dir);
  const spec = parseEncoderSpec(opts.encoderSpec);
  if (spec.kind === 'embedded') {
    throw new RetformerError(
      'kb import: the embedded encoder is fitted on pictures, and imported vectors come from another model: name that model with --encoder onnx:DIR (the CLIP that produced them)',
    );
  }
  const encoder = await createEncoder(spec, { quiet: opts.quiet });
  let writer: KbWriter | undefined;
  const indexing = commitProgress(opts.quiet, opts.onProgress);
  try {
    if (encoder.dim !== scan.dim) {
      throw new RetformerError(`${scan.parts[0].image}: vectors have dimension ${scan.dim}, but the encoder ${opts.encoderSpec} produces ${encoder.dim} (name the encoder that produced these vectors)`);
    }
    const state = await encoderState(encoder);
    const kb = await createKnowledgeBase(opts.out, { encoder: state.descriptor, encoderChecksum: state.checksum, encoderFiles: state.files, dim: encoder.dim, dtype: opts.dtype, expectedRows: scan.rows, connectivity: opts.connectivity });
    try {
      writer = await kb.beginWrite({ allowNewLabels: true, indexThreads: opts.indexThreads, onProgress: indexing.onProgress });
      const progress = startProgress('kb import', scan.rows, { unit: 'pair', quiet: opts.quiet });
      try {
        for await (const batch of readClipRetrievalPairs(scan, { batchSize: opts.batchSize, normalise: opts.normalise, onRows: (done) => progress.update(done) })) {
          await writer.append(batch.pairs, batch.locate);
        }
      } finally {
        progress.stop();
      }
      const manifest = await writer.commit();
      writer = undefined;
      return manifest;
    } finally {
      if (writer) await writer.abort().catch(() => undefined); // the error that stopped the import is the one to report
      await kb.close();
    }
  } finally {
    indexing.stop();
    await encoder.close();
  }
}
