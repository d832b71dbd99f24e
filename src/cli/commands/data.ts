import { type Command, Option } from 'commander';
import { z } from 'zod';
import { EMOJI_VENDORS, buildEmojiBenchmark } from '../../data/emoji.ts';
import { makeLongTail } from '../../data/longtail.ts';
import { writeManifest } from '../../data/manifest.ts';
import { addLabelNoise } from '../../data/noise.ts';
import { readDataset } from '../../data/readers.ts';
import { datasetStats, formatStats } from '../../data/stats.ts';
import { LIFT_BUCKETS } from '../../eval/types.ts';
import { checkOutputFile } from '../../util/fs.ts';
import { parseFlags } from '../parse-flags.ts';

const inputFlags = {
  manifest: z.string().min(1),
  classes: z.string().optional(),
  root: z.string().optional(),
};
const seed = z.coerce.number().int().default(0);

const longtailSchema = z.object({
  ...inputFlags,
  imbalance: z.coerce.number().min(1),
  profile: z.enum(['exp', 'step']).default('exp'),
  maxPerClass: z.coerce.number().int().positive().optional(),
  seed,
  out: z.string().min(1),
  force: z.boolean().default(false),
});

const noiseSchema = z.object({
  ...inputFlags,
  rate: z.coerce.number().min(0).max(1),
  mode: z.enum(['sym', 'asym']).default('sym'),
  seed,
  out: z.string().min(1),
  force: z.boolean().default(false),
});

const statsSchema = z.object({
  ...inputFlags,
  many: z.coerce.number().int().nonnegative().default(LIFT_BUCKETS.many),
  few: z.coerce.number().int().nonnegative().default(LIFT_BUCKETS.few),
  json: z.boolean().default(false),
});

const vendorCsv = z
  .string()
  .transform((s) => s.split(',').map((v) => v.trim()).filter((v) => v !== ''))
  .pipe(z.array(z.enum(EMOJI_VENDORS)).min(1));
const emojiSchema = z.object({
  out: z.string().min(1),
  trainVendors: vendorCsv.default(['apple', 'facebook']),
  testVendors: vendorCsv.default(['google']),
  kbVendors: vendorCsv.default(['twitter']),
  quiet: z.boolean().default(false),
});

function addInputOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--manifest <input>', 'dataset: CSV manifest (path,label[,text,split,clean_label]), image folder root/<label>/<file>, or LIFT split .txt')
    .option('--classes <file>', 'class list (one class per line) fixing the class order; default: sorted labels')
    .option('--root <dir>', 'LIFT split files: folder the image paths are relative to (default: the file\'s folder)');
}

/** Where the data commands print (tests capture it; the CLI uses the process streams). */
export interface DataCommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo: DataCommandIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** `retformer data ...`: long-tail and label-noise generators, dataset statistics, the emoji benchmark builder. */
export function registerDataCommands(program: Command, io: DataCommandIo = processIo): void {
  const data = program.command('data').description('Prepare datasets: long-tailed subsets, label noise, statistics, the emoji benchmark');

  addInputOptions(
    data
      .command('longtail')
      .description('Subsample a dataset into a long-tailed one (LIFT / CIFAR-100-LT rule: n_c = floor(n_max * (1/IF)^(c/(C-1))) in class order)'),
  )
    .requiredOption('--imbalance <factor>', 'imbalance factor IF = n_max / n_min, e.g. 100')
    .addOption(new Option('--profile <profile>', 'exp: exponential decay over the class order; step: half the classes keep n_max, the rest n_max/IF').choices(['exp', 'step']).default('exp'))
    .option('--max-per-class <n>', 'n_max (default: the largest class count available)')
    .option('--seed <seed>', 'seed of the per-class random choice', '0')
    .requiredOption('--out <csv>', 'output CSV manifest (paths relative to its folder)')
    .option('--force', 'overwrite --out if it exists')
    .action((raw) => {
      const flags = parseFlags(longtailSchema, raw);
      checkOutputFile(flags.out, flags.force);
      const dataset = readDataset(flags.manifest, { classes: flags.classes, root: flags.root });
      const result = makeLongTail(dataset, flags);
      writeManifest(flags.out, result.dataset.samples);
      const counts = result.counts;
      io.out(
        `wrote ${flags.out}: ${result.dataset.samples.length} of ${dataset.samples.length} images, ${counts.length} classes, ` +
          `${Math.max(...counts)}..${Math.min(...counts)} per class (n_max ${result.nMax}, IF ${flags.imbalance}, ${flags.profile})\n`,
      );
      if (result.short.length) {
        const list = result.short.slice(0, 5).map((s) => `${s.label} ${s.available}/${s.target}`).join(', ');
        io.err(`retformer: warning: ${result.short.length} classes had fewer images than their target and kept all (${list}${result.short.length > 5 ? ', ...' : ''})\n`);
      }
    });

  addInputOptions(data.command('noise').description('Corrupt labels (the clean label is kept in the clean_label column)'))
    .requiredOption('--rate <p>', 'flip probability per sample, in [0, 1]')
    .addOption(new Option('--mode <mode>', 'sym: flip to a uniformly chosen other class; asym: class i -> class (i+1) mod C').choices(['sym', 'asym']).default('sym'))
    .option('--seed <seed>', 'seed of the flips', '0')
    .requiredOption('--out <csv>', 'output CSV manifest (paths relative to its folder)')
    .option('--force', 'overwrite --out if it exists')
    .action((raw) => {
      const flags = parseFlags(noiseSchema, raw);
      checkOutputFile(flags.out, flags.force);
      const dataset = readDataset(flags.manifest, { classes: flags.classes, root: flags.root });
      const result = addLabelNoise(dataset, flags);
      writeManifest(flags.out, result.dataset.samples);
      io.out(
        `wrote ${flags.out}: ${result.flipped} of ${dataset.samples.length} labels flipped (${(100 * result.realisedRate).toFixed(1)}%, ${flags.mode}, rate ${flags.rate})\n`,
      );
    });

  addInputOptions(data.command('stats').description('Per-class counts and Many (> many) / Medium (few..many) / Few (< few) buckets'))
    .option('--many <n>', 'Many bucket: classes with more than n images', String(LIFT_BUCKETS.many))
    .option('--few <n>', 'Few bucket: classes with fewer than n images', String(LIFT_BUCKETS.few))
    .option('--json', 'print JSON instead of tables')
    .action((raw) => {
      const flags = parseFlags(statsSchema, raw);
      const dataset = readDataset(flags.manifest, { classes: flags.classes, root: flags.root });
      const stats = datasetStats(dataset, { many: flags.many, few: flags.few });
      io.out(flags.json ? `${JSON.stringify(stats, null, 2)}\n` : formatStats(stats));
    });

  data
    .command('emoji')
    .description('Build the emoji long-tail benchmark (99 subcategories) from the installed emoji-datasource packages')
    .requiredOption('--out <dir>', 'output folder (images/, train.csv, test.csv, kb.csv, classes.txt, info.json)')
    .option('--train-vendors <list>', `comma list of vendors for training pictures (of ${EMOJI_VENDORS.join(', ')})`, 'apple,facebook')
    .option('--test-vendors <list>', 'comma list of vendors for test pictures', 'google')
    .option('--kb-vendors <list>', 'comma list of vendors for knowledge-base pictures (paired with texts)', 'twitter')
    .option('--quiet', 'no progress bars')
    .action(async (raw) => {
      const flags = parseFlags(emojiSchema, raw);
      const info = await buildEmojiBenchmark(flags.out, flags);
      const b = info.buckets;
      io.out(
        `wrote ${info.dir}: train ${info.counts.train} (${info.vendors.train.join('+')}), test ${info.counts.test} (${info.vendors.test.join('+')}), ` +
          `kb ${info.counts.kb} (${info.vendors.kb.join('+')}), ${info.counts.classes} classes; ` +
          `Many ${b.many.classes} / Medium ${b.medium.classes} / Few ${b.few.classes} classes (> ${info.edges.many}, ${info.edges.few}..${info.edges.many}, < ${info.edges.few}); ` +
          `${info.copied} pictures copied, ${info.reused} already there\n`,
      );
    });
}
