import { z } from 'zod';
import { RetformerError } from '../util/errors.ts';
import type { BucketEdges } from '../data/types.ts';

/**
 * Parsing of the numeric flags the eval / predict / compare commands share. Commander hands over
 * strings; these turn them into validated numbers or a one-line error naming the flag.
 */

function parseWith<T>(schema: z.ZodType<T>, flag: string, value: string, expected: string): T {
  const trimmed = value.trim();
  const parsed = schema.safeParse(trimmed === '' ? Number.NaN : Number(trimmed));
  if (!parsed.success) throw new RetformerError(`${flag}: expected ${expected}, got "${value}"`);
  return parsed.data;
}

/** A positive integer flag value (e.g. --k, --epochs, --jobs). */
export function positiveIntFlag(flag: string, value: string): number {
  return parseWith(z.number().int().positive(), flag, value, 'a positive integer');
}

/** A non-negative integer flag value (e.g. --seed). */
export function nonNegativeIntFlag(flag: string, value: string): number {
  return parseWith(z.number().int().nonnegative(), flag, value, 'a non-negative integer');
}

/** A non-negative number flag value (e.g. --many, --few). */
export function nonNegativeNumberFlag(flag: string, value: string): number {
  return parseWith(z.number().nonnegative().finite(), flag, value, 'a non-negative number');
}

/** A probability flag value in [0, 1] (e.g. --abstain-below). */
export function probabilityFlag(flag: string, value: string): number {
  return parseWith(z.number().min(0).max(1), flag, value, 'a probability between 0 and 1');
}

/** Bucket edges from --many / --few, defaulting to `defaults`; Few must not exceed Many. */
export function edgesFromFlags(many: string | undefined, few: string | undefined, defaults: BucketEdges): BucketEdges {
  const edges = {
    many: many === undefined ? defaults.many : nonNegativeNumberFlag('--many', many),
    few: few === undefined ? defaults.few : nonNegativeNumberFlag('--few', few),
  };
  if (edges.few > edges.many) throw new RetformerError(`--few (${edges.few}) must not exceed --many (${edges.many})`);
  return edges;
}

/** One of `allowed` (e.g. --label-memory tied). */
export function choiceFlag<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new RetformerError(`${flag}: unknown "${value}" (choose from ${allowed.join(', ')})`);
  return value as T;
}

/** A comma-separated list flag, e.g. "full,mlp-only" -> ["full", "mlp-only"], each checked against `allowed`. */
export function listFlag(flag: string, value: string, allowed: readonly string[]): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new RetformerError(`${flag}: empty list (choose from ${allowed.join(', ')})`);
  for (const item of items) {
    if (!allowed.includes(item)) throw new RetformerError(`${flag}: unknown "${item}" (choose from ${allowed.join(', ')})`);
  }
  return [...new Set(items)];
}

/** `key=n,key=n` with keys from `allowed` and positive integers (e.g. --k-method knn-vote=4,image-only=8). */
export function keyedIntsFlag(flag: string, value: string, allowed: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    if (eq < 0) throw new RetformerError(`${flag}: "${item}" is not key=n`);
    const key = item.slice(0, eq).trim();
    if (!allowed.includes(key)) throw new RetformerError(`${flag}: unknown "${key}" (choose from ${allowed.join(', ')})`);
    out[key] = positiveIntFlag(flag, item.slice(eq + 1).trim());
  }
  if (Object.keys(out).length === 0) throw new RetformerError(`${flag}: empty list (key=n, keys from ${allowed.join(', ')})`);
  return out;
}

/** A whole-number option of a command's zod schema, at least `min` (commander hands it over as a string). */
export const intOption = (min: number) => z.coerce.number().int().min(min);

/** `--hnsw-m`: the HNSW graph degree M, in the range the KB accepts (connectivityFor: 2..128). */
export const hnswMOption = intOption(2).max(128).optional();

/** The help of `--hnsw-m` where a KB is created (kb build, kb import). */
export const HNSW_M_HELP = 'HNSW graph degree M (default: 16, or 32 when the KB is created with more than 250,000 pairs: docs/kb-format.md)';
