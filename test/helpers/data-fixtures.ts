import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommanderError } from 'commander';
import { RetformerCommand } from '../../src/cli/command.ts';
import { registerDataCommands } from '../../src/cli/commands/data.ts';
import { toCsv } from '../../src/util/csv.ts';
import { RetformerError } from '../../src/util/errors.ts';

/** A fresh temp folder, removed by the returned cleanup. */
export function makeTmpDir(prefix = 'retformer-data-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Write a manifest of `counts[c]` rows per class `c<i>` (paths img/c<i>_<j>.png, no files), returns its path. */
export function writeCountsManifest(dir: string, counts: readonly number[], name = 'train.csv', classPrefix = 'c'): string {
  const rows: Record<string, string>[] = [];
  counts.forEach((n, c) => {
    for (let j = 0; j < n; j++) rows.push({ path: `img/${classPrefix}${c}_${j}.png`, label: `${classPrefix}${c}` });
  });
  const file = join(dir, name);
  writeFileSync(file, toCsv(['path', 'label'], rows));
  return file;
}

/** Class names `c0..c<n-1>` in numeric order (the alphabetical sort would put c10 before c2). */
export function classNames(n: number, prefix = 'c'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `retformer data ...` in-process with only the data commands registered (as the CLI does: a RetformerError
 * becomes one `retformer: msg` line and a non-zero code). Progress output is silenced.
 */
export async function runDataCli(args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const program = new RetformerCommand('retformer').exitOverride();
  program.configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
  registerDataCommands(program, { out: (s) => out.push(s), err: (s) => err.push(s) });
  const quiet = process.env.RETFORMER_QUIET;
  process.env.RETFORMER_QUIET = '1';
  let code = 0;
  try {
    await program.parseAsync(['node', 'retformer', 'data', ...args]);
  } catch (e) {
    if (e instanceof RetformerError) {
      err.push(`retformer: ${e.message}\n`);
      code = e.exitCode;
    } else if (e instanceof CommanderError) {
      code = e.exitCode;
    } else {
      throw e;
    }
  } finally {
    if (quiet === undefined) delete process.env.RETFORMER_QUIET;
    else process.env.RETFORMER_QUIET = quiet;
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}
