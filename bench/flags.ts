import { parseArgs } from 'node:util';
import { z } from 'zod';

/**
 * Benchmark flags from one table: each `--name value` flag with its default (as typed on the command
 * line) and the zod type that checks and converts it. Unknown flags are refused; a bad value stops
 * the benchmark with zod's message naming the flag.
 */

export interface BenchFlag<T extends z.ZodType = z.ZodType> {
  default?: string;
  value: T;
}

/** A whole number, at least `min`. */
export const intFlag = (min?: number) => (min === undefined ? z.coerce.number().int() : z.coerce.number().int().min(min));

/** A comma-separated list, each item checked and converted by `item` (e.g. `--ef 64,96,128`). */
export const listFlag = <T extends z.ZodType>(item: T) =>
  z
    .string()
    .transform((s) => s.split(',').map((v) => v.trim()))
    .pipe(z.array(item) as unknown as z.ZodType<z.output<T>[], string[]>); // items arrive as strings; the item type coerces them

export function parseBenchFlags<F extends Record<string, BenchFlag>>(flags: F, args: string[] = process.argv.slice(2)): { [K in keyof F]: z.output<F[K]['value']> } {
  const entries = Object.entries(flags);
  const { values } = parseArgs({
    args,
    options: Object.fromEntries(entries.map(([name, f]) => [name, { type: 'string' as const, ...(f.default === undefined ? {} : { default: f.default }) }])),
    strict: true,
  });
  const schema = z.object(Object.fromEntries(entries.map(([name, f]) => [name, f.value])));
  return schema.parse(values) as { [K in keyof F]: z.output<F[K]['value']> };
}
