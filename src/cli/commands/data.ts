import type { Command } from 'commander';

/** Placeholder until this command family lands. */
export function registerDataCommands(_program: Command): void {}
