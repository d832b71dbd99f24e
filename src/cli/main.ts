import { type Command, CommanderError } from 'commander';
import { RetformerCommand } from './command.ts';
import { registerAuditCommand } from './commands/audit.ts';
import { registerCompareCommand } from './commands/compare.ts';
import { registerDataCommands } from './commands/data.ts';
import { registerDemoCommand } from './commands/demo.ts';
import { registerEvalCommand } from './commands/eval.ts';
import { registerExportCommand } from './commands/export.ts';
import { registerKbCommands } from './commands/kb.ts';
import { registerPredictCommand } from './commands/predict.ts';
import { registerServeCommand } from './commands/serve.ts';
import { registerTrainCommand } from './commands/train.ts';
import { installLastResortHandlers, reportFailure } from './failure.ts';

/** Build the `retformer` command tree. Each command family lives in its own module under commands/. */
export function buildProgram(): Command {
  const program = new RetformerCommand('retformer')
    .description('Retrieval-augmented image recognition (RetFormer): image-text knowledge base, cross-fusion model, long-tail evaluation.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)');
  registerDataCommands(program);
  registerKbCommands(program);
  registerTrainCommand(program);
  registerEvalCommand(program);
  registerPredictCommand(program);
  registerExportCommand(program);
  registerCompareCommand(program);
  registerServeCommand(program);
  registerAuditCommand(program);
  registerDemoCommand(program);
  return program;
}

/** Run the CLI: user and system errors print one line and exit non-zero; bugs print their stack and exit 70. */
export async function runCli(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    reportFailure(err);
  }
}

installLastResortHandlers();
await runCli(process.argv);
