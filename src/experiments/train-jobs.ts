import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { mapConcurrent, type Slots } from '../util/concurrency.ts';
import { writeFileAtomic } from '../util/fs.ts';
import type { TrainJob } from './compare-plan.ts';
import { RETFORMER_BIN } from '../util/retformer-process.ts';

/** Training runs of a comparison as child processes (`retformer train`), `jobs` at a time, reused when their stamp matches. */

function lastErrorLine(logFile: string): string {
  if (!existsSync(logFile)) return '';
  const lines = readFileSync(logFile, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const errors = lines.filter((l) => l.startsWith('retformer:'));
  return errors.at(-1) ?? lines.at(-1) ?? '';
}

/** Run `retformer train` in a child process logging to logFile; resolves with its exit code. */
function runTrainProcess(args: readonly string[], logFile: string, append = false): Promise<number> {
  const fd = openSync(logFile, append ? 'a' : 'w');
  writeSync(fd, `$ retformer ${args.join(' ')}\n`);
  return new Promise<number>((resolvePromise, reject) => {
    const child = spawn(process.execPath, [RETFORMER_BIN, ...args], { stdio: ['ignore', fd, fd], env: { ...process.env } });
    child.on('error', (err) => {
      closeSync(fd);
      reject(err);
    });
    child.on('close', (code, signal) => {
      closeSync(fd);
      resolvePromise(code ?? (signal ? 128 : 1));
    });
  });
}

export interface TrainOutcome {
  key: string;
  seconds: number;
  skipped: boolean;
  error?: string;
}

/**
 * Train every job (OUT/runs/<key>, logs in OUT/logs, stamps in OUT/stamps); failures are outcomes, not
 * exceptions. `concurrency` processes at a time, or, with `slots`, as many as the shared slots allow.
 */
export async function trainAll(jobs: readonly TrainJob[], out: string, concurrency: number, step: (line: string) => void, slots?: Slots): Promise<TrainOutcome[]> {
  const logsDir = resolve(out, 'logs');
  const stampsDir = resolve(out, 'stamps');
  mkdirSync(logsDir, { recursive: true });
  mkdirSync(stampsDir, { recursive: true });
  mkdirSync(resolve(out, 'runs'), { recursive: true });
  let finished = 0;
  return mapConcurrent(jobs, slots ? jobs.length : concurrency, async (job) => {
    const key = job.method.key;
    const stampFile = join(stampsDir, `${key}.json`);
    const stampText = JSON.stringify(job.stamp);
    const haveWeights = existsSync(join(job.runDir, 'model'));
    if (haveWeights && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stampText) {
      finished++;
      step(`[${finished}/${jobs.length}] train ${key}: reusing ${job.runDir} (same settings, final weights present)`);
      return { key, seconds: 0, skipped: true };
    }
    // An interrupted run of the same settings resumes from its checkpoint; anything else starts afresh.
    const pendingFile = join(stampsDir, `${key}.pending.json`);
    const resume =
      existsSync(join(job.runDir, 'checkpoint')) && existsSync(pendingFile) && readFileSync(pendingFile, 'utf8').trim() === stampText;
    rmSync(stampFile, { force: true });
    if (!resume) rmSync(job.runDir, { recursive: true, force: true });
    writeFileAtomic(pendingFile, `${stampText}\n`);
    const logFile = join(logsDir, `${key}.log`);
    let t0 = 0;
    const train = () => {
      step(`train ${key}: ${resume ? 'resuming' : 'started'} (log ${logFile})`);
      t0 = performance.now();
      return runTrainProcess(resume ? [...job.args, '--resume'] : job.args, logFile, resume);
    };
    const code = slots ? await slots.run(train) : await train();
    const seconds = (performance.now() - t0) / 1000;
    finished++;
    if (code !== 0 || !existsSync(join(job.runDir, 'model'))) {
      const why = lastErrorLine(logFile);
      step(`[${finished}/${jobs.length}] train ${key}: FAILED (exit ${code}) after ${seconds.toFixed(1)} s`);
      return { key, seconds, skipped: false, error: `training ${key} failed (exit ${code})${why ? `: ${why}` : ''}; see ${logFile}` };
    }
    rmSync(pendingFile, { force: true });
    writeFileAtomic(stampFile, `${stampText}\n`);
    step(`[${finished}/${jobs.length}] train ${key}: done in ${seconds.toFixed(1)} s`);
    return { key, seconds, skipped: false };
  });
}
