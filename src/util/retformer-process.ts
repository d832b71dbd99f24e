import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RetformerError } from './errors.ts';

/** The CLI entry point (from src/util or dist/util alike). */
export const RETFORMER_BIN = fileURLToPath(new URL('../../bin/retformer.js', import.meta.url));

/**
 * Run `retformer ARGS` as a child process (its own ONNX Runtime and memory, as experiments want);
 * resolves with its stdout, rejects with one line: which command failed, its exit code and the
 * last line it printed on stderr.
 */
export function runRetformer(args: readonly string[], what = `retformer ${args.slice(0, 2).join(' ')}`): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [RETFORMER_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done(stdout) : fail(new RetformerError(`${what} failed (${code}): ${stderr.trim().split('\n').at(-1) ?? ''}`))));
  });
}
