import type { Command } from 'commander';

/** Placeholder until this command family lands. */
export function registerDemoCommand(_program: Command): void {}
