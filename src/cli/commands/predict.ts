import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { positiveIntFlag, probabilityFlag } from '../flag-values.ts';
import { RetformerError } from '../../util/errors.ts';

interface PredictFlags {
  run: string;
  image: string[];
  dir?: string;
  manifest?: string;
  out?: string;
  format?: string;
  force?: boolean;
  kb?: string;
  top: string;
  batchSize: string;
  abstainBelow?: string;
  json?: boolean;
  quiet?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** The pictures named by --image (repeated), --dir and --manifest, in that order, and the manifest's labels where it has them. */
async function picturesOf(flags: PredictFlags): Promise<{ images: string[]; labels?: (string | undefined)[] }> {
  const images = flags.image.map((p) => resolve(p));
  let labels: (string | undefined)[] | undefined;
  for (const image of images) {
    if (!existsSync(image)) throw new RetformerError(`${image}: image file not found (--image)`);
    if (statSync(image).isDirectory()) throw new RetformerError(`${image}: is a folder, expected an image file (--image; use --dir for a folder)`);
  }
  if (flags.dir !== undefined || flags.manifest !== undefined) {
    const { imagesInFolder, imagesInManifest } = await import('../../data/image-list.ts');
    if (flags.dir !== undefined) images.push(...imagesInFolder(flags.dir));
    if (flags.manifest !== undefined) {
      const manifest = imagesInManifest(resolve(flags.manifest));
      if (manifest.labels) labels = [...images.map(() => undefined), ...manifest.labels];
      images.push(...manifest.images);
    }
  }
  if (images.length === 0) throw new RetformerError('no pictures: give --image FILE (repeatable), --dir FOLDER or --manifest CSV');
  return { images, labels };
}

/** `retformer predict`: classify one picture (human text or --json) or many (CSV / JSON Lines rows). */
export function registerPredictCommand(program: Command): void {
  program
    .command('predict')
    .summary('Classify images and show the neighbours behind each answer (one, or many to CSV / JSON Lines)')
    .description(
      "Classify images with a trained run: the label and its probability, the top classes, the two branches' logits " +
        'for that label (L_I: MLP, L_R: retrieval), and the k KB neighbours with their text, similarity and attention weight. ' +
        'One --image prints a readable report (or --json); several --image, --dir or --manifest write one row per picture ' +
        'as CSV or JSON Lines to --out (or to stdout), with progress on stderr. Unreadable pictures get a row with an error.',
    )
    .requiredOption('--run <dir>', 'run folder written by `retformer train`')
    .option('--image <file>', 'a picture to classify (PNG, JPEG, WebP, ...); repeat for several', collect, [] as string[])
    .option('--dir <folder>', 'classify every image file under this folder (recursive, sorted)')
    .option('--manifest <csv>', 'classify the pictures of a CSV with a path column (relative to the CSV)')
    .option('--out <file>', 'write one row per picture to this file: .csv or .jsonl (default: stdout)')
    .option('--format <csv|jsonl>', 'row format (default: from the --out extension, else jsonl)')
    .option('--force', 'replace an existing --out file')
    .option('--kb <dir>', "the run's KB at another path (default: the path recorded in RUN/kb.json)")
    .option('--top <n>', 'how many top classes to list', '5')
    .option('--batch-size <n>', 'pictures per classify call (many pictures)', '64')
    .option('--abstain-below <p>', 'abstain when the top probability is below p (0..1): one picture says so with its best guess; many pictures get an empty label and abstained = true (best guess first in top), and the summary gives the coverage (and the accuracy on the answered pictures of a labelled --manifest)')
    .option('--json', 'one picture: print the prediction as JSON')
    .option('--quiet', 'no progress on stderr')
    .action(async (flags: PredictFlags) => {
      const top = positiveIntFlag('--top', flags.top);
      const chunk = positiveIntFlag('--batch-size', flags.batchSize);
      const abstainBelow = flags.abstainBelow === undefined ? undefined : probabilityFlag('--abstain-below', flags.abstainBelow);
      const runDir = resolve(flags.run);
      if (!existsSync(runDir)) throw new RetformerError(`${runDir}: run folder not found (--run)`);
      const { images, labels } = await picturesOf(flags);
      const single = images.length === 1 && flags.image.length === 1 && flags.out === undefined && flags.format === undefined;
      const { Predictor } = await import('../../infer/predictor.ts');
      if (single) {
        const { formatPredictionText, predictionReport } = await import('../../infer/report.ts');
        const predictor = await Predictor.fromRun(runDir, { kb: flags.kb });
        try {
          const [prediction] = await predictor.classify(images, { top });
          const report = predictionReport(images[0], prediction, predictor.classes, top, abstainBelow);
          process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatPredictionText(report));
        } finally {
          await predictor.close();
        }
        return;
      }
      const { formatPredictManySummary, openRowWriter, outputFormatOf, predictMany } = await import('../../infer/batch.ts');
      const { startProgress } = await import('../../util/progress.ts');
      const writer = openRowWriter(flags.out, outputFormatOf(flags.out, flags.format), flags.force);
      let predictor: Awaited<ReturnType<typeof Predictor.fromRun>> | undefined;
      const progress = startProgress('predict', images.length, { unit: 'img', quiet: flags.quiet });
      try {
        predictor = await Predictor.fromRun(runDir, { kb: flags.kb, batchSize: chunk });
        const summary = await predictMany(predictor, images, (r) => writer.write(r), { top, chunk, abstainBelow, labels, onProgress: (done) => progress.update(done) });
        progress.stop();
        writer.close();
        if (!flags.quiet) process.stderr.write(`${formatPredictManySummary(summary, images.length, abstainBelow)}${flags.out ? ` -> ${resolve(flags.out)}` : ''}\n`);
      } catch (err) {
        progress.stop();
        writer.abort();
        throw err;
      } finally {
        await predictor?.close();
      }
    });
}
