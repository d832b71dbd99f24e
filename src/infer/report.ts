import type { Prediction } from './types.ts';

/** What `retformer predict` shows for a prediction: the human text, the JSON report, and batch rows (CSV / JSON Lines). */

function clip(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}

/** The JSON form of one prediction: label, probability, top classes and the neighbours with their attention. */
export interface PredictionReport {
  image: string;
  /** The predicted class; null when the picture abstained (its best guess is then `top[0]`). */
  label: string | null;
  /** The top class's probability (also when the picture abstained). */
  probability: number;
  /** With `--abstain-below P`: P, and whether the top probability fell below it (then `label` is null). */
  abstainBelow?: number;
  abstained?: boolean;
  top: { label: string; probability: number }[];
  /** The branches' logits for the predicted class before fusion: L_I (MLP) and L_R (retrieval). */
  branches?: { image: number; retrieval?: number };
  gate?: number;
  neighbours: { rank: number; id: string; text: string; label?: string; source: string; similarity: number; attention: number }[];
}

/** The parts of a Prediction a report shows (`top` is recomputed from `probs` for the length asked). */
export type ReportedPrediction = Pick<Prediction, 'label' | 'probs' | 'neighbours' | 'attention' | 'gate'> & Partial<Pick<Prediction, 'branches'>>;

export function predictionReport(image: string, prediction: ReportedPrediction, classes: readonly string[], top = 5, abstainBelow?: number): PredictionReport {
  const order = Array.from(prediction.probs, (p, c) => ({ c, p })).sort((a, b) => b.p - a.p || a.c - b.c);
  const probability = prediction.probs[prediction.label];
  const abstained = abstainBelow !== undefined && probability < abstainBelow;
  return {
    image,
    label: abstained ? null : classes[prediction.label],
    probability,
    ...(abstainBelow === undefined ? {} : { abstainBelow, abstained }),
    top: order.slice(0, Math.max(1, top)).map(({ c, p }) => ({ label: classes[c], probability: p })),
    ...(prediction.branches === undefined ? {} : { branches: prediction.branches }),
    ...(prediction.gate === undefined ? {} : { gate: prediction.gate }),
    neighbours: prediction.neighbours.map((nb, r) => ({
      rank: r + 1,
      id: nb.id,
      text: nb.text,
      ...(nb.label === undefined ? {} : { label: nb.label }),
      source: nb.source,
      similarity: nb.similarity,
      attention: prediction.attention[r] ?? 0,
    })),
  };
}

export function formatPredictionText(report: PredictionReport): string {
  const best = report.top[0].label;
  const lines = report.abstained
    ? [`${report.image}: abstains (top probability ${report.probability.toFixed(3)} < ${report.abstainBelow}; best guess ${best})`]
    : [`${report.image}: ${best} (p = ${report.probability.toFixed(3)})`];
  if (report.branches?.retrieval !== undefined) lines.push(`branch logits for ${best}: MLP (L_I) ${report.branches.image.toFixed(3)}, retrieval (L_R) ${report.branches.retrieval.toFixed(3)}`);
  if (report.gate !== undefined) lines.push(`retrieval gate: ${report.gate.toFixed(3)}`);
  lines.push('', `top ${report.top.length}:`);
  report.top.forEach((t, i) => {
    lines.push(`  ${i + 1}. ${t.label}  ${t.probability.toFixed(3)}`);
  });
  if (report.neighbours.length === 0) {
    lines.push('', 'neighbours: none (this run does not retrieve)');
  } else {
    lines.push('', `neighbours (k = ${report.neighbours.length}, best first; attention = weight in the fusion):`);
    lines.push('| # | similarity | attention | label | text |', '|---:|---:|---:|---|---|');
    for (const nb of report.neighbours) {
      lines.push(`| ${nb.rank} | ${nb.similarity.toFixed(3)} | ${nb.attention.toFixed(3)} | ${nb.label ?? ''} | ${clip(nb.text, 60)} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** A picture that could not be classified (unreadable, not an image): one row with the reason. */
export interface FailedReport {
  image: string;
  error: string;
}

/** Columns of `retformer predict --out FILE.csv`, one row per picture. */
export const PREDICTION_CSV_COLUMNS = ['image', 'label', 'probability', 'abstained', 'top', 'image_logit', 'retrieval_logit', 'gate', 'neighbours', 'error'] as const;

/**
 * One CSV row: `top` as `class:p;class:p`, `neighbours` as `id:attention;...` (best first by
 * similarity), the branch logits for the top class, or only `image` and `error` for a failure.
 * With `--abstain-below`, `abstained` is `true` or `false` and an abstained row's `label` is empty
 * (its best guess stays first in `top`, with `probability`); without it, `abstained` is empty.
 */
export function predictionCsvRow(report: PredictionReport | FailedReport): Record<(typeof PREDICTION_CSV_COLUMNS)[number], string | number | undefined> {
  if ('error' in report) return { image: report.image, label: undefined, probability: undefined, abstained: undefined, top: undefined, image_logit: undefined, retrieval_logit: undefined, gate: undefined, neighbours: undefined, error: report.error };
  return {
    image: report.image,
    label: report.label ?? undefined,
    probability: report.probability,
    abstained: report.abstained === undefined ? undefined : String(report.abstained),
    top: report.top.map((t) => `${t.label}:${t.probability.toFixed(6)}`).join(';'),
    image_logit: report.branches?.image,
    retrieval_logit: report.branches?.retrieval,
    gate: report.gate,
    neighbours: report.neighbours.map((n) => `${n.id}:${n.attention.toFixed(6)}`).join(';'),
    error: undefined,
  };
}
