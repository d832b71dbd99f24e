/**
 * A user-facing failure: bad input, a missing file, a refused operation.
 * The CLI prints `retformer: <message>` on one line and exits with `exitCode`;
 * anything that is not a RetformerError is a bug and prints its stack.
 */
export class RetformerError extends Error {
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RetformerError';
    this.exitCode = options.exitCode ?? 1;
  }
}

/** `file:row: message` — the one-line form every input error uses. Rows are 1-based data rows (header excluded) unless `line` is given. */
export function inputError(file: string, row: number | undefined, message: string): RetformerError {
  return new RetformerError(row === undefined ? `${file}: ${message}` : `${file}:${row}: ${message}`);
}
