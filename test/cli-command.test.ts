import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommanderError } from 'commander';
import { RetformerCommand } from '../src/cli/command.ts';

/** A leaf command with one required option, errors thrown instead of exiting, stderr captured. */
function leaf(): { cmd: RetformerCommand; stderr: () => string } {
  let err = '';
  const cmd = new RetformerCommand('stats');
  cmd
    .requiredOption('--manifest <file>', 'manifest')
    .exitOverride()
    .configureOutput({ writeErr: (s) => (err += s), writeOut: () => {} })
    .action(() => {});
  return { cmd, stderr: () => err };
}

function parseError(cmd: RetformerCommand, args: string[]): CommanderError {
  try {
    cmd.parse(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e;
    throw e;
  }
  assert.fail(`parse of ${args.join(' ')} did not fail`);
}

describe('RetformerCommand: unknown options', () => {
  it('names a misspelt flag as unknown, with a suggestion, before the missing required one', () => {
    const { cmd, stderr } = leaf();
    const e = parseError(cmd, ['--manfest', 'x.csv']);
    assert.equal(e.code, 'commander.unknownOption');
    assert.match(stderr(), /^error: unknown option '--manfest'\n\(Did you mean --manifest\?\)/);
  });

  it('still names the unknown flag if commander no longer has its internal reporter', () => {
    const { cmd, stderr } = leaf();
    (cmd as unknown as { unknownOption?: unknown }).unknownOption = undefined;
    const e = parseError(cmd, ['--manfest', 'x.csv']);
    assert.equal(e.code, 'commander.unknownOption');
    assert.match(stderr(), /^error: unknown option '--manfest'\n/);
    assert.doesNotMatch(stderr(), /required option/);
  });

  it('parses known options as before', () => {
    const { cmd } = leaf();
    cmd.parse(['--manifest', 'x.csv'], { from: 'user' });
    assert.equal(cmd.opts().manifest, 'x.csv');
  });
});
