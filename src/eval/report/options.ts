import { z } from 'zod';
import { RetformerError } from '../../util/errors.ts';

/** Report settings, with their defaults; validated where they come in from a user. */
export const ReportOptionsSchema = z
  .object({
    /** Page and document title. */
    title: z.string().min(1).default('RetFormer long-tail comparison'),
    /** Most gallery cards shown. */
    galleryItems: z.number().int().min(0).default(12),
    /** Neighbours shown per gallery card (best first). */
    galleryNeighbours: z.number().int().min(0).default(5),
    /** Neighbour texts are cut to this many characters. */
    textMaxChars: z.number().int().min(8).default(60),
    /** Thumbnail edge in pixels. */
    thumbSize: z.number().int().min(8).max(512).default(64),
  })
  .strict();

export type ReportOptions = z.infer<typeof ReportOptionsSchema>;

/** Fill defaults and check ranges; a bad value is a one-line RetformerError naming the option. */
export function resolveReportOptions(input: Partial<ReportOptions> = {}): ReportOptions {
  const parsed = ReportOptionsSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RetformerError(`report option ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}
