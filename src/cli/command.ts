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
    if (this.commands.length === 0 && flag?.startsWith('-') && !wantsHelp) this.reportUnknownOption(flag);
    return parsed;
  }

  /**
   * Commander's own report (with its suggestion) lives in an undeclared method; should an upgrade
   * rename it, the same first line is still printed, only without the suggestion.
   */
  private reportUnknownOption(flag: string): never {
    const internal = (this as unknown as { unknownOption?: (flag: string) => never }).unknownOption;
    if (typeof internal === 'function') internal.call(this, flag);
    this.error(`error: unknown option '${flag}'`, { code: 'commander.unknownOption' });
  }
}
