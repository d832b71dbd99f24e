import type { Command } from 'commander';

/** Placeholder until this command family lands. */
export function registerKbCommands(_program: Command): void {}
