import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError } from '../util/errors.ts';

/** The files of a RUN_DIR. */
export const RUN_FILES = {
  config: 'config.json',
  kb: 'kb.json',
  classes: 'classes.txt',
  counts: 'train-counts.json',
  checkpoint: 'checkpoint',
  checkpointState: 'checkpoint/state.json',
  model: 'model',
  history: 'history.jsonl',
  retrieval: 'retrieval',
} as const;

/** RUN_DIR/kb.json: which KB and encoder the run was trained with. */
export interface RunKbInfo {
  /** KB spec as the registry opens it (a folder path or a backend URL); absent when trained on an in-memory KB. */
  spec?: string;
  /** Absolute KB folder (format written before KB specs; kept for readers of older runs). */
  dir?: string;
  /** The KB's id (made at creation; with `generation` it identifies the KB's content). */
  kbId?: string;
  encoderId: string;
  generation: number;
  dim: number;
  size: number;
}

/** RUN_DIR/checkpoint/state.json: the last completed epoch and where its files are. */
export interface CheckpointState {
  /** Epochs completed. */
  epoch: number;
  /** Optimizer steps taken. */
  step: number;
  /** Sub-folder of checkpoint/ holding weights and AdamW moments of that epoch. */
  folder: string;
}

/** One line of history.jsonl. */
export interface HistoryLine {
  epoch: number;
  loss: number;
  lr: number;
  seconds: number;
  samplesPerSecond: number;
}

export function readJson<T>(file: string, what: string): T {
  if (!existsSync(file)) throw new RetformerError(`${file}: missing (${what})`);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    throw new RetformerError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

export function readClassesFile(runDir: string): string[] {
  const file = join(runDir, RUN_FILES.classes);
  if (!existsSync(file)) throw new RetformerError(`${file}: missing (class list of the run)`);
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}
