import type { Command } from 'commander';

/** Placeholder until this command family lands. */
export function registerPredictCommand(_program: Command): void {}
