import { toUserError } from '../util/errors.ts';

/** Exit code of a bug (sysexits' EX_SOFTWARE); user and system errors exit 1 unless they say otherwise. */
export const INTERNAL_ERROR_EXIT = 70;

/**
 * What the CLI prints for a failure and the exit code: a user error or a system error (full disk,
 * read-only folder, a directory where a file belongs, ...) is one line, `retformer: <message>`;
 * anything else is a bug and prints its stack, but never the source line Node adds for an uncaught
 * error: inside a minified library (the tfjs wasm backend) that line is tens of kilobytes.
 */
export function describeFailure(err: unknown): { text: string; exitCode: number } {
  const user = toUserError(err);
  if (user) return { text: `retformer: ${user.message.split('\n')[0]}\n`, exitCode: user.exitCode };
  const stack = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
  return { text: `retformer: internal error (a bug, please report it):\n${stack}\n`, exitCode: INTERNAL_ERROR_EXIT };
}

/** Print a failure the CLI's way and set the exit code. */
export function reportFailure(err: unknown): void {
  const { text, exitCode } = describeFailure(err);
  process.stderr.write(text);
  process.exitCode = exitCode;
}

/**
 * Errors thrown outside the command's promise chain (a callback, a stream, a rejected promise
 * nobody awaited) end the process the same way. Put first among the listeners: the tfjs wasm
 * backend adds its own `uncaughtException` handler, which rethrows, so Node would print the
 * library's whole minified source line and exit 7.
 */
export function installLastResortHandlers(): void {
  const onFatal = (err: unknown) => {
    reportFailure(err);
    process.exit();
  };
  process.prependListener('uncaughtException', onFatal);
  process.prependListener('unhandledRejection', onFatal);
}
