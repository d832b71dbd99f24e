import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import type { Dataset } from '../data/types.ts';
import { normalizeKbSpec } from '../kb/index.ts';
import type { KbManifest } from '../kb/types.ts';
import { LIFT_BUCKETS } from '../eval/types.ts';
import { LABEL_MEMORY } from '../model/config.ts';
import type { Slots } from '../util/concurrency.ts';
import { RetformerError } from '../util/errors.ts';
import { METHOD_KEYS, type MethodSpec } from './methods.ts';

/** What a comparison will do, decided before anything runs: validated options, each method's preconditions, the training jobs. */

const positiveInt = z.number().int().positive();

/** Options of a comparison, validated at the edge (CLI flags and in-process callers alike). */
export const CompareOptionsSchema = z
  .object({
    train: z.string().min(1),
    test: z.string().min(1),
    kb: z.string().min(1),
    out: z.string().min(1),
    config: z.string().min(1).optional(),
    epochs: positiveInt.optional(),
    k: positiveInt.optional(),
    /** Per-method k (method key -> k), e.g. each chosen on validation; a method not listed uses `k`. */
    kByMethod: z.record(z.string(), positiveInt).optional(),
    jobs: positiveInt.default(2),
    edges: z.object({ many: z.number().nonnegative(), few: z.number().nonnegative() }).default(LIFT_BUCKETS),
    variants: z
      .array(z.string())
      .default([...METHOD_KEYS])
      .refine((keys) => keys.length > 0, 'give at least one method'),
    seed: z.number().int().nonnegative().default(0),
    quiet: z.boolean().default(false),
    cacheDir: z.string().optional(),
    /** Beyond the paper, for the RetFormer rows only (not the baselines): --label-memory and --sim-bias of their `retformer train`. */
    fusion: z.object({ labelMemory: z.enum(LABEL_MEMORY).optional(), simBias: z.boolean().optional() }).optional(),
  })
  .refine((o) => o.edges.few <= o.edges.many, { message: 'the Few edge must not exceed the Many edge', path: ['edges'] });

export type CompareOptions = z.input<typeof CompareOptionsSchema> & {
  /** Called with one line per step (training, evaluation); default prints `compare: <line>` on stderr unless quiet. */
  onStep?: (line: string) => void;
  /** Training slots shared with other comparisons running at the same time (instead of `jobs`). */
  slots?: Slots;
};

export type ParsedCompareOptions = z.output<typeof CompareOptionsSchema>;

/** Default k for the kNN vote when neither --k nor a trained run says otherwise (the paper's k). */
export const DEFAULT_K = 32;

/** The k a method of this comparison uses when set by the options (its kByMethod entry, else `k`); undefined leaves it to the config. */
export function methodK(o: ParsedCompareOptions, key: string): number | undefined {
  return o.kByMethod?.[key] ?? o.k;
}

export function parseCompareOptions(options: CompareOptions): ParsedCompareOptions {
  const parsed = CompareOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RetformerError(`compare: ${issue.path.join('.') || 'options'}: ${issue.message}`);
  }
  const unknown = parsed.data.variants.filter((v) => !METHOD_KEYS.includes(v));
  if (unknown.length > 0) throw new RetformerError(`compare: unknown method "${unknown[0]}" (choose from ${METHOD_KEYS.join(', ')})`);
  const unknownK = Object.keys(parsed.data.kByMethod ?? {}).filter((key) => !METHOD_KEYS.includes(key));
  if (unknownK.length > 0) throw new RetformerError(`compare: kByMethod names an unknown method "${unknownK[0]}" (choose from ${METHOD_KEYS.join(', ')})`);
  return parsed.data;
}

const digest = (data: string | Buffer) => createHash('sha256').update(data).digest('hex').slice(0, 16);

/**
 * What a split's content hashes to: the file's bytes for a CSV or LIFT list (ids, texts and labels
 * included), or the sample list (path, label) for an image folder.
 */
export function datasetDigest(path: string, dataset: Dataset): string {
  if (statSync(path).isFile()) return digest(readFileSync(path));
  return digest(JSON.stringify(dataset.samples.map((s) => [s.path, s.label])));
}

/**
 * The identity of a KB's content as a trained run depends on it: its id when the backend records
 * one, else when it was created (a rebuild is a new KB even at generation 1), its generation (every
 * add/remove) and the encoder (id and, for file KBs, the checksum of its saved state).
 */
export function kbIdentity(manifest: KbManifest): Record<string, unknown> {
  const text = (key: string) => (typeof manifest[key] === 'string' ? (manifest[key] as string) : null);
  return { id: text('kbId') ?? text('id'), createdAt: manifest.createdAt, generation: manifest.generation, encoder: manifest.encoder.id, encoderChecksum: text('encoderChecksum') };
}

/** What the KB offers the methods: its size, and whether its pairs carry labels (undefined: the backend does not say). */
export interface KbFacts {
  count: number;
  labelled?: boolean;
}

export function kbFacts(manifest: KbManifest): KbFacts {
  const labels = manifest.labels;
  return { count: manifest.count, labelled: Array.isArray(labels) ? labels.length > 0 : undefined };
}

/** Why a method cannot run on this KB (checked before anything is trained), or undefined when it can. */
export function methodPrecondition(method: MethodSpec, kb: KbFacts): string | undefined {
  const retrieves = method.key === 'knn-vote' || (method.train !== undefined && method.train.variant !== 'mlp-only');
  if (retrieves && kb.count === 0) return 'needs a knowledge base with pairs; this KB is empty';
  if (method.key === 'knn-vote' && kb.labelled === false) return 'needs a knowledge base whose pairs have labels (build it from a CSV with a "label" column); this KB has none';
  return undefined;
}

export interface TrainJob {
  method: MethodSpec;
  runDir: string;
  args: string[];
  /** What the run's result depends on; a run whose stamp matches and has final weights is reused. */
  stamp: Record<string, unknown>;
}

/** `retformer train` flags of the fusion options (none when unset). */
export function fusionArgs(fusion: ParsedCompareOptions['fusion']): string[] {
  return [...(fusion?.labelMemory ? ['--label-memory', fusion.labelMemory] : []), ...(fusion?.simBias ? ['--sim-bias'] : [])];
}

/** One `retformer train` per trainable method, with the stamp of everything its result depends on. */
export function trainJobs(o: ParsedCompareOptions, methods: readonly MethodSpec[], inputs: { train: string; kb: Record<string, unknown> }): TrainJob[] {
  const common: string[] = ['--train', resolve(o.train), '--kb', normalizeKbSpec(o.kb), '--seed', String(o.seed)];
  if (o.epochs !== undefined) common.push('--epochs', String(o.epochs));
  if (o.config !== undefined) common.push('--config', resolve(o.config));
  if (o.cacheDir !== undefined) common.push('--cache', resolve(o.cacheDir));
  const stampInputs = { train: inputs.train, config: o.config === undefined ? null : digest(readFileSync(o.config)), kb: inputs.kb };
  return methods
    .filter((m) => m.train !== undefined)
    .map((m) => {
      const runDir = resolve(o.out, 'runs', m.key);
      const fusion = m.kind === 'retformer' ? fusionArgs(o.fusion) : [];
      const k = m.train!.variant === 'mlp-only' ? o.k : methodK(o, m.key); // MLP only does not retrieve: its k stays what --k says
      const args = ['--variant', m.train!.variant, ...(m.train!.adaptive ? ['--adaptive'] : []), ...fusion, ...(k === undefined ? [] : ['--k', String(k)]), ...common];
      return { method: m, runDir, args: ['train', ...args, '--out', runDir], stamp: { args, inputs: stampInputs } };
    });
}
