import type { Command } from 'commander';

/** Placeholder until this command family lands. */
export function registerCompareCommand(_program: Command): void {}
