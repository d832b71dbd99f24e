import type { RetformerError } from '../util/errors.ts';

/**
 * An error the HTTP service answers with a status and a one-line message
 * (`{ statusCode, error, message }`). Anything else thrown inside a handler is a bug: 500, logged.
 */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(oneLine(message));
    this.name = 'HttpError';
  }
}

/** Refuse a request (400 "send exactly one of: `what`") unless exactly one of its alternative inputs was sent. */
export function requireExactlyOne(given: readonly boolean[], what: string): void {
  if (given.filter(Boolean).length !== 1) throw new HttpError(400, `send exactly one of: ${what}`);
}

/** First line of a message, trimmed and capped (user-facing errors are one line). */
export function oneLine(message: string, max = 300): string {
  const line = message.split('\n')[0].trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Status for an error from the library (RetformerError): unknown ids are 404, the rest bad input (400). */
export function statusOfLibraryError(err: RetformerError): number {
  return /unknown id|not in the knowledge base|already removed/i.test(err.message) ? 404 : /duplicate id|already exists/i.test(err.message) ? 409 : 400;
}
