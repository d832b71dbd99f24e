import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readDataset } from '../data/index.ts';
import type { Dataset } from '../data/types.ts';
import type { KnowledgeBase, PairMeta } from '../kb/types.ts';
import { retrieveNeighbours } from '../train/retrieval.ts';
import type { Predictor } from '../infer/types.ts';
import { toCsv } from '../util/csv.ts';
import { RetformerError } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { embedTestImages } from './evaluate.ts';

/**
 * Label audit: which training rows does the retrieved evidence contradict? Each training image
 * retrieves its k nearest KB pairs (never its own pair: the leakage guard drops pairs made from
 * the same picture); each neighbour votes for its label with weight max(similarity, 0). A row is
 * flagged when another label gets more of the vote than the row's own label and the own label's
 * share is at most `maxSupport`; flagged rows are ranked by how much the top other label leads.
 * A neighbour that is itself a row of the audited CSV votes with that row's label (the labels
 * under audit), otherwise with its KB label.
 */

export const DEFAULT_MAX_SUPPORT = 0.1;

export interface AuditNeighbour {
  id: string;
  label: string | undefined;
  similarity: number;
  source: string;
  text: string;
}

export interface AuditRow {
  /** 1-based data row of the training CSV. */
  row: number;
  path: string;
  label: string;
  /** The label the evidence favours most. */
  suggested: string;
  /** Similarity-weighted vote shares, in [0, 1]. */
  labelShare: number;
  suggestedShare: number;
  /** suggestedShare - labelShare: the ranking score. */
  margin: number;
  /** From the CSV's clean_label column, when it has one (a noisy split made by `data noise`). */
  cleanLabel?: string;
  /** The neighbours that voted for another label than the row's, best first. */
  contradicting: AuditNeighbour[];
}

export interface Evidence {
  /** Similarity-weighted vote share per label, in [0, 1]; shares sum to 1 when any neighbour has a positive similarity. */
  shares: Map<string, number>;
  suggested: string | undefined;
}

/** The similarity-weighted label vote of one query's neighbours (unlabelled neighbours abstain). */
export function labelEvidence(neighbours: readonly { label: string | undefined; similarity: number }[]): Evidence {
  const weight = new Map<string, number>();
  let total = 0;
  for (const nb of neighbours) {
    if (nb.label === undefined) continue;
    const w = Math.max(nb.similarity, 0);
    weight.set(nb.label, (weight.get(nb.label) ?? 0) + w);
    total += w;
  }
  const shares = new Map([...weight].map(([label, w]) => [label, total > 0 ? w / total : 0]));
  let suggested: string | undefined;
  let best = -1;
  for (const [label, share] of [...shares].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (share > best) {
      best = share;
      suggested = label;
    }
  }
  return { shares, suggested };
}

/** Flag a row whose label the evidence contradicts; undefined when it does not. */
export function auditRow(sample: { row: number; path: string; label: string; cleanLabel?: string }, neighbours: readonly AuditNeighbour[], maxSupport = DEFAULT_MAX_SUPPORT): AuditRow | undefined {
  const { shares } = labelEvidence(neighbours);
  const labelShare = shares.get(sample.label) ?? 0;
  let suggested: string | undefined;
  let suggestedShare = -1;
  for (const [label, share] of [...shares].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (label !== sample.label && share > suggestedShare) {
      suggested = label;
      suggestedShare = share;
    }
  }
  if (suggested === undefined || suggestedShare <= labelShare || labelShare > maxSupport) return undefined;
  return {
    row: sample.row,
    path: sample.path,
    label: sample.label,
    suggested,
    labelShare,
    suggestedShare,
    margin: suggestedShare - labelShare,
    ...(sample.cleanLabel === undefined ? {} : { cleanLabel: sample.cleanLabel }),
    contradicting: neighbours.filter((nb) => nb.label !== undefined && nb.label !== sample.label),
  };
}

export interface AuditSummary {
  checked: number;
  flagged: number;
  k: number;
  maxSupport: number;
  /** With a clean_label column: rows whose label differs from it, and how well the flags find them. */
  noisy?: number;
  precision?: number;
  recall?: number;
  /** Share of flagged noisy rows whose suggested label is the clean one. */
  suggestedClean?: number;
  /** Precision of the top `noisy` ranked rows (R-precision): how clean the head of the ranked list is. */
  rPrecision?: number;
}

/** Precision and recall of the flagged rows against the clean labels (rows whose label != clean_label are the noisy ones). */
export function scoreAudit(samples: readonly { row: number; label: string; cleanLabel?: string }[], flagged: readonly AuditRow[]): Pick<AuditSummary, 'noisy' | 'precision' | 'recall' | 'suggestedClean' | 'rPrecision'> {
  if (!samples.some((s) => s.cleanLabel !== undefined)) return {};
  const noisyRows = new Set(samples.filter((s) => s.cleanLabel !== undefined && s.cleanLabel !== s.label).map((s) => s.row));
  const hits = flagged.filter((f) => noisyRows.has(f.row));
  return {
    noisy: noisyRows.size,
    precision: flagged.length > 0 ? hits.length / flagged.length : 0,
    recall: noisyRows.size > 0 ? hits.length / noisyRows.size : 0,
    suggestedClean: hits.length > 0 ? hits.filter((f) => f.suggested === f.cleanLabel).length / hits.length : 0,
    rPrecision: noisyRows.size > 0 ? flagged.slice(0, noisyRows.size).filter((f) => noisyRows.has(f.row)).length / noisyRows.size : 0,
  };
}

export interface AuditOptions {
  /** Neighbours per training row (default: the run's k). */
  k?: number;
  maxSupport?: number;
  cacheDir?: string;
  quiet?: boolean;
}

/** Audit the labels of `train` against the retrieved evidence of the run's KB (with its encoder). */
export async function auditLabels(run: Pick<Predictor, 'kb' | 'encoder' | 'config'>, train: Dataset, options: AuditOptions = {}): Promise<{ rows: AuditRow[]; summary: AuditSummary }> {
  const k = options.k ?? run.config.k;
  const maxSupport = options.maxSupport ?? DEFAULT_MAX_SUPPORT;
  if (!(maxSupport >= 0 && maxSupport <= 1)) throw new RetformerError(`--max-support must be in [0, 1], got ${maxSupport}`);
  const kb: KnowledgeBase = run.kb;
  const embeddings = await embedTestImages(run.encoder, train, { cacheDir: options.cacheDir, quiet: options.quiet }); // [n, dim]
  const sources = train.samples.map((s) => s.path);
  const retrieved = await retrieveNeighbours(kb, embeddings, { k, extra: 8, queryEncoderId: run.encoder.id, sources, quiet: options.quiet, label: 'audit' });
  const unique = [...new Set(Array.from(retrieved.rows).filter((r) => r >= 0))];
  const metas = await kb.meta(unique);
  const metaOf = new Map<number, PairMeta>(unique.map((r, i) => [r, metas[i]]));
  const labelOfPath = new Map(train.samples.map((s) => [resolve(s.path), s.label]));
  const rows: AuditRow[] = [];
  train.samples.forEach((s, q) => {
    const neighbours: AuditNeighbour[] = [];
    for (let j = 0; j < k; j++) {
      const r = retrieved.rows[q * k + j];
      if (r < 0) continue;
      const m = metaOf.get(r)!;
      const label = (m.source ? labelOfPath.get(resolve(m.source)) : undefined) ?? m.label;
      neighbours.push({ id: m.id, label, similarity: retrieved.similarities[q * k + j], source: m.source, text: m.text });
    }
    const flagged = auditRow(s, neighbours, maxSupport);
    if (flagged) rows.push(flagged);
  });
  rows.sort((a, b) => b.margin - a.margin || a.row - b.row);
  const summary: AuditSummary = { checked: train.samples.length, flagged: rows.length, k, maxSupport, ...scoreAudit(train.samples, rows) };
  return { rows, summary };
}

const pct = (v: number | undefined) => (v === undefined ? '-' : `${(100 * v).toFixed(1)}%`);

/** One paragraph: how many rows were checked and flagged, and (with clean labels) precision and recall. */
export function formatAuditSummary(s: AuditSummary): string {
  const base = `Checked ${s.checked} training rows against their ${s.k} nearest KB pairs (own pair excluded): ${s.flagged} flagged (own label's share of the similarity-weighted vote <= ${s.maxSupport} and below another label's).`;
  if (s.noisy === undefined) return base;
  return `${base} Against the clean labels (${s.noisy} rows are noisy): precision ${pct(s.precision)}, recall ${pct(s.recall)}, precision of the top ${s.noisy} ranked rows ${pct(s.rPrecision)}; the suggested label is the clean one for ${pct(s.suggestedClean)} of the flagged noisy rows.`;
}

/** Write OUT/audit.csv (every flagged row, ranked), OUT/audit.md (summary and the top rows) and OUT/audit.json (summary). */
export function writeAudit(outDir: string, audit: { rows: AuditRow[]; summary: AuditSummary }, top = 25): { csv: string; markdown: string } {
  const dir = resolve(outDir);
  mkdirSync(dir, { recursive: true });
  const hasClean = audit.rows.some((r) => r.cleanLabel !== undefined);
  const columns = ['rank', 'row', 'path', 'label', 'suggested', 'label_share', 'suggested_share', ...(hasClean ? ['clean_label'] : []), 'contradicting'];
  const csvRows = audit.rows.map((r, i) => ({
    rank: i + 1,
    row: r.row,
    path: r.path,
    label: r.label,
    suggested: r.suggested,
    label_share: r.labelShare.toFixed(3),
    suggested_share: r.suggestedShare.toFixed(3),
    clean_label: r.cleanLabel,
    contradicting: r.contradicting.map((n) => `${n.id} [${n.label}] ${n.similarity.toFixed(3)}`).join('; '),
  }));
  const csv = join(dir, 'audit.csv');
  writeFileAtomic(csv, toCsv(columns, csvRows));
  writeJsonAtomic(join(dir, 'audit.json'), audit.summary);
  const esc = (t: string) => t.replace(/\|/g, '\\|');
  const lines = ['# Label audit', '', formatAuditSummary(audit.summary), '', `The ${Math.min(top, audit.rows.length)} rows the evidence contradicts most (all in audit.csv):`, ''];
  lines.push(`| rank | row | label | suggested | label share | suggested share |${hasClean ? ' clean label |' : ''} contradicting neighbours |`);
  lines.push(`|---:|---:|---|---|---:|---:|${hasClean ? '---|' : ''}---|`);
  audit.rows.slice(0, top).forEach((r, i) => {
    const nbs = r.contradicting
      .slice(0, 3)
      .map((n) => `${esc(n.id)} (${esc(n.label ?? '')}, ${n.similarity.toFixed(2)})`)
      .join(', ');
    lines.push(`| ${i + 1} | ${r.row} | ${esc(r.label)} | ${esc(r.suggested)} | ${r.labelShare.toFixed(2)} | ${r.suggestedShare.toFixed(2)} |${hasClean ? ` ${esc(r.cleanLabel ?? '')} |` : ''} ${nbs} |`);
  });
  const markdown = `${lines.join('\n')}\n`;
  writeFileAtomic(join(dir, 'audit.md'), markdown);
  return { csv, markdown };
}

/** Read the training CSV and audit it with an opened run. */
export async function auditTrainingCsv(run: Pick<Predictor, 'kb' | 'encoder' | 'config'>, trainCsv: string, options: AuditOptions = {}) {
  return auditLabels(run, readDataset(resolve(trainCsv)), options);
}
