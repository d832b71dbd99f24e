import type { Command } from 'commander';
import { z } from 'zod';
import { join, resolve } from 'node:path';
import { K_GRID, SELECTION_RULES, type SelectionResult, TAU_GRID } from '../../eval/select.ts';
import { LABEL_MEMORY, VARIANTS } from '../../model/config.ts';
import { RetformerError } from '../../util/errors.ts';
import { writeJsonAtomic } from '../../util/fs.ts';
import { parseFlags } from '../parse-flags.ts';

/** CLI flags; the model/training ones map onto TrainConfig fields (undefined = keep the config file's or default value). */
const trainFlagsSchema = z.object({
  train: z.string({ message: 'required (the training CSV)' }),
  kb: z.string({ message: 'required (the knowledge base folder)' }),
  out: z.string({ message: 'required (the run folder to write)' }),
  config: z.string().optional(),
  variant: z.enum(VARIANTS).optional(),
  adaptive: z.boolean().optional(),
  labelMemory: z.enum(LABEL_MEMORY).optional(),
  simBias: z.boolean().optional(),
  k: z.union([z.literal('auto'), z.coerce.number().int().min(1)]).optional(),
  tau: z.union([z.literal('auto'), z.coerce.number().positive()]).optional(),
  jobs: z.coerce.number().int().min(1).default(2),
  selectRule: z.enum(SELECTION_RULES).optional(),
  epochs: z.coerce.number().int().min(1).optional(),
  batchSize: z.coerce.number().int().min(1).optional(),
  lr: z.coerce.number().positive().optional(),
  loss: z.enum(['ce', 'lace']).optional(),
  seed: z.coerce.number().int().min(0).optional(),
  threads: z.coerce.number().int().min(1).max(64).optional(),
  resume: z.boolean().default(false),
  force: z.boolean().default(false),
  cache: z.string().optional(),
  quiet: z.boolean().default(false),
});

/** `retformer train`: train a RetFormer run on a training CSV against a knowledge base. */
export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description(
      'Train RetFormer (MLP branch + image-text cross-fusion over the k nearest KB pairs) on frozen embeddings. ' +
        "Defaults follow the paper: AdamW wd 0.1, lr 5e-4, batch 256, 1 warmup epoch then cosine, label smoothing 0.1, Mixup 0.8, 25 epochs, k 32, 4 layers. " +
        'Writes RUN_DIR/{config.json,kb.json,classes.txt,train-counts.json,history.jsonl,checkpoint/,model/}.',
    )
    .requiredOption('--train <csv>', 'training manifest (path,label[,text,id]); an id column lists KB pair ids to exclude per row')
    .requiredOption('--kb <dir>', 'knowledge base folder (its encoder embeds the training images)')
    .requiredOption('--out <dir>', 'run folder to create')
    .option('--config <json>', 'JSON file of config fields (flags override it)')
    .option('--variant <name>', `model variant: ${VARIANTS.join(' | ')}`)
    .option('--adaptive', 'learn a per-query gate between the branches and a null attention token (beyond the paper)')
    .option('--label-memory <mode>', `neighbour-label embeddings added to the neighbour tokens: ${LABEL_MEMORY.join(' | ')} (default off; see docs/results.md)`)
    .option('--sim-bias', 'add a learned per-head scale times the query-neighbour similarity to the attention logits (beyond the paper)')
    .option('--k <n|auto>', `neighbours per query (default 32); auto: chosen among ${K_GRID.join(', ')} on a validation split carved from --train (RUN_DIR/selection.json)`)
    .option('--tau <x|auto>', `fusion scale tau (default 1); auto: chosen among ${TAU_GRID.join(', ')} on the same validation split`)
    .option('--jobs <n>', 'with auto: candidate runs trained at a time', '2')
    .option('--select-rule <rule>', `with auto: ${SELECTION_RULES.join(' | ')} (default one-se: the smallest k within one paired standard error of the best balanced accuracy; best: the highest)`)
    .option('--epochs <n>', 'epochs (default 25)')
    .option('--batch-size <n>', 'samples per optimizer step (default 256; run as micro-batches)')
    .option('--lr <x>', 'peak learning rate (default 5e-4)')
    .option('--loss <name>', 'ce | lace (logit-adjusted CE; default ce)')
    .option('--seed <n>', 'seed for init, shuffles and Mixup (default 0)')
    .option('--threads <n>', 'ONNX Runtime threads for training (default 1: bit-reproducible; 2 threads measured 1.6x faster on 2 idle cores)')
    .option('--resume', 'continue an interrupted run from its last checkpoint (keeps its saved config)')
    .option('--force', 'replace an existing run folder')
    .option('--cache <dir>', 'embedding cache folder (default $RETFORMER_CACHE or ./.cache/retformer/embeddings)')
    .option('--quiet', 'no progress output')
    .action(async (raw: Record<string, unknown>) => {
      const flags = parseFlags(trainFlagsSchema, raw);
      const { trainRun } = await import('../../train/index.ts');
      let k = flags.k === 'auto' ? undefined : flags.k;
      let tau = flags.tau === 'auto' ? undefined : flags.tau;
      let selection: SelectionResult | undefined;
      if (flags.k === 'auto' || flags.tau === 'auto') {
        if (flags.resume) throw new RetformerError('--k auto / --tau auto choose settings for a new run; drop them with --resume');
        const { formatSelection, selectSettings } = await import('../../eval/select.ts');
        selection = await selectSettings({
          train: flags.train,
          kb: flags.kb,
          out: `${resolve(flags.out)}.select`,
          config: flags.config,
          variant: flags.variant,
          adaptive: flags.adaptive,
          labelMemory: flags.labelMemory,
          simBias: flags.simBias,
          grid: { k: flags.k === 'auto' ? K_GRID : k === undefined ? undefined : [k], tau: flags.tau === 'auto' ? TAU_GRID : tau === undefined ? undefined : [tau] },
          seed: flags.seed,
          epochs: flags.epochs,
          jobs: flags.jobs,
          rule: flags.selectRule,
          cacheDir: flags.cache,
          onStep: flags.quiet ? undefined : (line) => process.stderr.write(`select: ${line}\n`),
        });
        ({ k, tau } = selection.chosen);
        if (!flags.quiet) process.stderr.write(formatSelection(selection));
      }
      const result = await trainRun({
        trainCsv: flags.train,
        kbDir: flags.kb,
        outDir: flags.out,
        configFile: flags.config,
        config: { variant: flags.variant, adaptive: flags.adaptive, labelMemory: flags.labelMemory, simBias: flags.simBias, k, tau, epochs: flags.epochs, batchSize: flags.batchSize, lr: flags.lr, loss: flags.loss, seed: flags.seed, threads: flags.threads },
        resume: flags.resume,
        force: flags.force,
        cacheDir: flags.cache,
        quiet: flags.quiet,
      });
      if (selection) writeJsonAtomic(join(result.runDir, 'selection.json'), selection);
      if (result.epochsTrained === 0) process.stdout.write(`nothing to resume: ${result.runDir} has finished all ${result.epochs} epochs\n`);
      else {
        const from = result.epochs - result.epochsTrained + 1;
        const resumed = from === 1 ? '' : from === result.epochs ? `, epoch ${from} (resumed)` : `, epochs ${from}-${result.epochs} (resumed)`;
        process.stdout.write(`trained ${result.runDir} in ${result.seconds.toFixed(1)} s${resumed} (${result.samplesPerSecond.toFixed(1)} samples/s)\n`);
      }
    });
}
