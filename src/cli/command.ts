import { Command } from 'commander';

/**
 * Commander reports a missing required option before an unknown one, so a misspelt `--manfest`
 * would read "required option '--manifest' not specified". Leaf commands here report the unknown
 * option first (with commander's "did you mean" suggestion).
 */
export class RetformerCommand extends Command {
  override createCommand(name?: string): Command {
    return new RetformerCommand(name);
  }

  override parseOptions(argv: string[]): ReturnType<Command['parseOptions']> {
    const parsed = super.parseOptions(argv);
    const flag = parsed.unknown[0];
    const wantsHelp = parsed.unknown.some((a) => a === '--help' || a === '-h'); // commander answers help from the unknown list
    if (this.commands.length === 0 && flag?.startsWith('-') && !wantsHelp) (this as unknown as { unknownOption(flag: string): never }).unknownOption(flag);
    return parsed;
  }
}
