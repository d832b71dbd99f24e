import { closeSync, existsSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { csvLine } from '../util/csv.ts';
import { RetformerError } from '../util/errors.ts';
import { type FailedReport, PREDICTION_CSV_COLUMNS, type PredictionReport, predictionCsvRow, predictionReport } from './report.ts';
import type { Prediction, Predictor } from './types.ts';

/** Classify many pictures and write one row each (CSV or JSON Lines): `retformer predict --dir / --manifest / --out`. */

export const OUTPUT_FORMATS = ['csv', 'jsonl'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The output format: `--format` if given, else by the file's extension (.csv, .jsonl / .ndjson), else JSON Lines. */
export function outputFormatOf(file: string | undefined, format: string | undefined): OutputFormat {
  if (format !== undefined) {
    const f = format.toLowerCase();
    if (f === 'csv' || f === 'jsonl') return f;
    throw new RetformerError(`--format: "${format}" is not one of ${OUTPUT_FORMATS.join(', ')}`);
  }
  if (file === undefined) return 'jsonl';
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new RetformerError(`${file}: cannot tell the format from the extension; name it .csv or .jsonl, or give --format csv|jsonl`);
}

/** Where rows go: a file (written beside it, renamed into place when complete) or stdout. */
export interface RowWriter {
  write(report: PredictionReport | FailedReport): void;
  /** Finish: the file appears under its name only now. */
  close(): void;
  /** Give up: no partial file is left. */
  abort(): void;
}

/** A row writer for `file` (undefined: stdout). An existing file is refused unless `force`. */
export function openRowWriter(file: string | undefined, format: OutputFormat, force = false): RowWriter {
  const line = (r: PredictionReport | FailedReport) => (format === 'csv' ? csvLine(Object.values(predictionCsvRow(r))) : `${JSON.stringify(r)}\n`);
  const header = format === 'csv' ? csvLine(PREDICTION_CSV_COLUMNS) : '';
  if (file === undefined) {
    if (header) process.stdout.write(header);
    return { write: (r) => process.stdout.write(line(r)), close() {}, abort() {} };
  }
  const target = resolve(file);
  if (existsSync(target)) {
    if (statSync(target).isDirectory()) throw new RetformerError(`${target}: is a folder (--out names a file)`);
    if (!force) throw new RetformerError(`${target}: exists; use --force to replace it`);
  }
  if (!existsSync(dirname(target))) throw new RetformerError(`${dirname(target)}: folder not found (--out)`);
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.partial`);
  const fd = openSync(temp, 'w');
  let open = true;
  const put = (text: string) => {
    if (text) writeSync(fd, text);
  };
  try {
    put(header);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  return {
    write: (r) => put(line(r)),
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
      renameSync(temp, target);
    },
    abort() {
      if (!open) return;
      open = false;
      closeSync(fd);
      rmSync(temp, { force: true });
    },
  };
}

export interface PredictManyOptions {
  /** Top classes per picture (default 5). */
  top?: number;
  /** Pictures per classify call (default 64). */
  chunk?: number;
  /** Abstain (null label, `abstained: true`) when the top probability is below this (0..1). */
  abstainBelow?: number;
  /** Known class name per picture, aligned with `images` (a labelled manifest): the summary then counts the right answers. */
  labels?: readonly (string | undefined)[];
  onProgress?: (done: number, total: number) => void;
}

/** What a batch produced: failures, and of the pictures read, how many were answered (not abstained) and how many of those were right. */
export interface PredictManySummary {
  failed: number;
  /** Pictures classified (read without error). */
  predicted: number;
  /** Of those, answered: all of them without `abstainBelow`. */
  answered: number;
  /** Answered pictures with a known label, and how many of them the answer got right. */
  answeredLabelled: number;
  answeredCorrect: number;
}

/**
 * Classify `images` in chunks and hand each picture's report to `emit`, in input order. A picture the
 * encoder refuses (unreadable, not an image) becomes a failed row with the one-line reason; the others
 * in its chunk are still classified.
 */
export async function predictMany(predictor: Predictor, images: readonly string[], emit: (report: PredictionReport | FailedReport) => void, options: PredictManyOptions = {}): Promise<PredictManySummary> {
  const top = options.top ?? 5;
  const chunk = options.chunk ?? 64;
  const summary: PredictManySummary = { failed: 0, predicted: 0, answered: 0, answeredLabelled: 0, answeredCorrect: 0 };
  const report = (index: number, p: Prediction) => {
    const r = predictionReport(images[index], p, predictor.classes, top, options.abstainBelow);
    summary.predicted++;
    if (r.label !== null) {
      summary.answered++;
      const truth = options.labels?.[index];
      if (truth !== undefined) {
        summary.answeredLabelled++;
        if (r.label === truth) summary.answeredCorrect++;
      }
    }
    emit(r);
  };
  for (let start = 0; start < images.length; start += chunk) {
    const part = images.slice(start, start + chunk);
    try {
      const predictions = await predictor.classify(part, { top });
      predictions.forEach((p, i) => {
        report(start + i, p);
      });
    } catch (err) {
      if (!(err instanceof RetformerError)) throw err;
      for (let i = 0; i < part.length; i++) {
        let p: Prediction;
        try {
          [p] = await predictor.classify([part[i]], { top });
        } catch (e) {
          if (!(e instanceof RetformerError)) throw e;
          summary.failed++;
          emit({ image: part[i], error: e.message });
          continue;
        }
        report(start + i, p);
      }
    }
    options.onProgress?.(Math.min(images.length, start + chunk), images.length);
  }
  return summary;
}

/** The summary line on stderr: pictures predicted, failures, and with abstention or labels coverage and accuracy. */
export function formatPredictManySummary(s: PredictManySummary, total: number, abstainBelow: number | undefined): string {
  const pct = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-');
  let line = `predicted ${s.predicted} of ${total} pictures${s.failed > 0 ? ` (${s.failed} could not be read: see the error column)` : ''}`;
  if (abstainBelow !== undefined) line += `; answered ${s.answered} (coverage ${pct(s.answered, s.predicted)}), ${s.predicted - s.answered} abstained below p = ${abstainBelow}`;
  if (s.answeredLabelled > 0) line += `; accuracy ${pct(s.answeredCorrect, s.answeredLabelled)} on the ${s.answeredLabelled} ${abstainBelow !== undefined ? 'answered ' : ''}labelled pictures`;
  return line;
}
