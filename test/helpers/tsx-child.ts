import { spawn } from 'node:child_process';

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Run a TypeScript helper script (through tsx) as its own process; resolves when it exits, with its output. */
export function runTsxChild(script: string, args: readonly string[]): Promise<ChildResult> {
  const child = spawn('node', ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  return new Promise((res) => child.on('close', (code, signal) => res({ code, signal, out, err })));
}
