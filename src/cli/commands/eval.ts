import type { Command } from 'commander';

/** Placeholder until this command family lands. */
export function registerEvalCommand(_program: Command): void {}
