import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { inputError } from '../../util/errors.ts';
import type { CompareResults } from '../results.ts';

const nullableNumber = z.number().nullable();

const MetricsSchema = z.object({
  overall: z.number(),
  many: nullableNumber,
  medium: nullableNumber,
  few: nullableNumber,
  balanced: z.number().optional(),
  ece: z.number().optional(),
  macroF1: z.number(),
  worstClass: z.object({ label: z.string(), accuracy: z.number() }),
  perClass: z.record(z.string(), z.number()),
  buckets: z.object({ many: z.number(), medium: z.number(), few: z.number() }),
  n: z.number(),
});

/** The shape of results.json the report reads (src/eval/results.ts), checked at the file boundary. */
export const CompareResultsSchema = z
  .object({
    createdAt: z.string(),
    seed: z.number(),
    classes: z.array(z.string()),
    trainCounts: z.array(z.number()),
    edges: z.object({ many: z.number(), few: z.number() }),
    test: z.array(z.object({ path: z.string(), label: z.number().int() })),
    methods: z.array(
      z.object({
        key: z.string(),
        name: z.string(),
        kind: z.enum(['baseline', 'retformer']),
        metrics: MetricsSchema,
        predictions: z.array(z.number()),
        confidences: z.array(z.number().min(0).max(1)).optional(),
        runDir: z.string().optional(),
        trainSeconds: z.number().optional(),
      }),
    ),
    skipped: z.array(z.object({ key: z.string(), name: z.string(), reason: z.string() })).optional(),
    purity: z.array(nullableNumber),
    gallery: z.array(
      z.object({
        testPath: z.string(),
        label: z.string(),
        mlpPred: z.string(),
        fullPred: z.string(),
        fullProb: z.number(),
        neighbours: z.array(
          z.object({ source: z.string(), text: z.string(), label: z.string().optional(), similarity: z.number(), attention: z.number() }),
        ),
      }),
    ),
    timings: z.record(z.string(), z.number()),
    settings: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    sections: z
      .array(z.object({ id: z.string(), title: z.string(), notes: z.array(z.string()), header: z.array(z.string()), rows: z.array(z.array(z.string())) }))
      .optional(),
  })
  .superRefine((r, ctx) => {
    if (r.trainCounts.length !== r.classes.length) {
      ctx.addIssue({ code: 'custom', path: ['trainCounts'], message: `has ${r.trainCounts.length} entries for ${r.classes.length} classes` });
    }
    if (r.purity.length !== r.classes.length) {
      ctx.addIssue({ code: 'custom', path: ['purity'], message: `has ${r.purity.length} entries for ${r.classes.length} classes` });
    }
  });

/** Read and check a results.json; any problem is a one-line RetformerError naming the file and the field. */
export function readCompareResults(file: string): CompareResults {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw inputError(file, undefined, code === 'ENOENT' ? 'file not found' : `not readable JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  const parsed = CompareResultsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw inputError(file, undefined, `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}
