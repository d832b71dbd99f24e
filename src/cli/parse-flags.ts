import type { z } from 'zod';
import { RetformerError } from '../util/errors.ts';

/**
 * Validate raw commander options with a zod schema; the first problem becomes a one-line error
 * naming the flag in its CLI spelling (`batchSize` -> `--batch-size`), after `prefix`.
 */
export function parseFlags<S extends z.ZodType>(schema: S, raw: unknown, prefix = ''): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const flag = String(issue.path[0] ?? '?').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  throw new RetformerError(`${prefix}--${flag}: ${issue.message}`);
}
