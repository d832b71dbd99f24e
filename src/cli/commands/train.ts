import type { Command } from 'commander';

/** Placeholder until this command family lands. */
export function registerTrainCommand(_program: Command): void {}
