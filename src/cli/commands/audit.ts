import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { positiveIntFlag, probabilityFlag } from '../flag-values.ts';
import { RetformerError } from '../../util/errors.ts';

interface AuditFlags {
  run: string;
  train: string;
  out?: string;
  k?: string;
  maxSupport: string;
  top: string;
  cache?: string;
  json?: boolean;
  quiet?: boolean;
}

/** `retformer audit`: training rows whose label the retrieved evidence contradicts, ranked, with the neighbours. */
export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .summary('List training rows whose label the retrieved KB evidence contradicts (label cleaning)')
    .description(
      "Retrieve each training image's k nearest pairs from the run's KB (never its own pair), let them vote for their " +
        "labels weighted by similarity, and flag rows whose own label gets at most --max-support of the vote and less than " +
        'another label. Writes OUT/audit.csv (every flagged row, ranked, with the contradicting neighbours), OUT/audit.md ' +
        'and OUT/audit.json; with a clean_label column (data noise) it also reports precision and recall of the flags.',
    )
    .requiredOption('--run <dir>', 'run folder (its KB, encoder and k)')
    .requiredOption('--train <file>', 'the training CSV whose labels to audit')
    .option('--out <dir>', 'output folder (default RUN/audit)')
    .option('--k <n>', "neighbours per row (default: the run's k)")
    .option('--max-support <p>', "flag only rows whose own label has at most this share of the vote (0..1)", '0.1')
    .option('--top <n>', 'rows to print', '10')
    .option('--cache <dir>', 'embedding cache folder')
    .option('--json', 'print the summary and the flagged rows as JSON')
    .option('--quiet', 'no progress bars')
    .action(async (flags: AuditFlags) => {
      const runDir = resolve(flags.run);
      if (!existsSync(runDir)) throw new RetformerError(`${runDir}: run folder not found (--run)`);
      const trainFile = resolve(flags.train);
      if (!existsSync(trainFile)) throw new RetformerError(`${trainFile}: training CSV not found (--train)`);
      const k = flags.k === undefined ? undefined : positiveIntFlag('--k', flags.k);
      const maxSupport = probabilityFlag('--max-support', flags.maxSupport);
      const top = positiveIntFlag('--top', flags.top);
      const out = resolve(flags.out ?? join(runDir, 'audit'));
      const { Predictor } = await import('../../infer/predictor.ts');
      const { auditTrainingCsv, formatAuditSummary, writeAudit } = await import('../../eval/audit.ts');
      const run = await Predictor.fromRun(runDir);
      try {
        const audit = await auditTrainingCsv(run, trainFile, { k, maxSupport, cacheDir: flags.cache, quiet: Boolean(flags.quiet || flags.json) });
        const { csv } = writeAudit(out, audit);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ summary: audit.summary, csv, rows: audit.rows.slice(0, top) }, null, 2)}\n`);
          return;
        }
        const lines = [formatAuditSummary(audit.summary), ''];
        for (const [i, r] of audit.rows.slice(0, top).entries()) {
          const nbs = r.contradicting.slice(0, 3).map((n) => `${n.id} [${n.label}] ${n.similarity.toFixed(2)}`);
          lines.push(`${String(i + 1).padStart(3)}. row ${r.row}: "${r.label}" (${r.labelShare.toFixed(2)}) -> "${r.suggested}" (${r.suggestedShare.toFixed(2)})  ${nbs.join('; ')}`);
        }
        lines.push('', `all flagged rows: ${csv}`);
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        await run.close();
      }
    });
}
