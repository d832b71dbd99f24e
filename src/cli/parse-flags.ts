import type { z } from 'zod';
import { RetformerError } from '../util/errors.ts';

/**
 * Validate raw commander options with a zod schema; the first problem becomes a one-line error
 * naming the flag in its CLI spelling (`batchSize` -> `--batch-size: ...`), the wording every
 * command's flag errors share.
 */
export function parseFlags<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const flag = String(issue.path[0] ?? '?').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  throw new RetformerError(`--${flag}: ${issue.message}`);
}
