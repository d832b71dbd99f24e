import type { Bucket, BucketEdges } from '../types.ts';

/** What an absent number (empty bucket, missing purity) prints as. */
export const DASH = '–';

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escape text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/**
 * Escape text for a Markdown table cell: HTML-significant characters become entities (renderers
 * pass raw HTML through), Markdown punctuation is backslash-escaped, newlines become spaces.
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([\\`*_[\]|~])/g, '\\$1');
}

/** Fixed-point with `digits` decimals, or the dash for null / non-finite. */
export function formatNumber(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined || !Number.isFinite(value) ? DASH : value.toFixed(digits);
}

/** A share in [0, 1] as a percentage with one decimal ("87.5%"), or the dash. */
export function formatShare(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? DASH : `${(value * 100).toFixed(1)}%`;
}

/** Human duration: "850 ms", "12.3 s", "4 min 05 s", "1 h 02 min". */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return DASH;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) {
    const m = Math.floor(seconds / 60);
    return `${m} min ${String(Math.round(seconds - m * 60)).padStart(2, '0')} s`;
  }
  const h = Math.floor(seconds / 3600);
  return `${h} h ${String(Math.round((seconds - h * 3600) / 60)).padStart(2, '0')} min`;
}

/** Shorten to at most `max` characters (ellipsis included), on a word boundary when one is near. */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const cut = flat.slice(0, Math.max(1, max - 1));
  const space = cut.lastIndexOf(' ');
  return `${space > max * 0.6 ? cut.slice(0, space) : cut}…`;
}

/** The long-tail bucket of a class from its training count (Many > many, Few < few, else Medium). */
export function bucketOf(trainCount: number, edges: BucketEdges): Bucket {
  if (trainCount > edges.many) return 'many';
  if (trainCount < edges.few) return 'few';
  return 'medium';
}

export const BUCKET_TITLES: Record<Bucket, string> = { many: 'Many', medium: 'Medium', few: 'Few' };
