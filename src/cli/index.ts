/**
 * The `peft-ts` command line: `train`, `xlora train`, `generate`, `merge`, `inspect`, `scalings`. `run(argv, io)`
 * parses and runs one command in-process and resolves to its exit code; `main.ts` calls it with the process's
 * arguments. Errors are one line on stderr (`peft-ts: <message>`) and a non-zero exit code; `PEFT_TS_DEBUG=1`
 * adds the stack trace.
 */
import { Command, CommanderError, Option } from 'commander';
import { PEFT_TS_VERSION } from '../tuners/config-schema.js';
import type { CliIo } from './common.js';
import { backendOption } from './common.js';
import { registerGenerate } from './generate.js';
import { registerInspect } from './inspect.js';
import { registerMerge } from './merge.js';
import { registerScalings } from './scalings.js';
import { registerTrain, registerXLoraTrain } from './train.js';

export type { CliIo, GlobalOptions } from './common.js';
export { inspectAdapter } from './inspect.js';
export type { AdapterInspection, TensorGroup } from './inspect.js';

/** stdout/stderr of this process. */
export const processIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** One line: the message with its line breaks folded (typed errors' messages can list issues on several lines). */
export function errorLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return `peft-ts: ${message.replace(/\s*\n\s*/g, ' ').trim() || (error instanceof Error ? error.name : 'error')}`;
}

/** The program with every command; output goes to `io`, and commander's exits become thrown `CommanderError`s. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('peft-ts');
  program
    .description('Parameter-efficient fine-tuning (LoRA, LoHa, X-LoRA) of Hugging Face models, on TensorFlow.js.')
    .version(PEFT_TS_VERSION, '-V, --version', 'print the version')
    .option('--verbose', 'print backend start-up and loading details')
    .addOption(new Option('--backend <name>', 'TF.js backend: tensorflow, wasm or cpu (default: PEFT_TS_BACKEND, else the best available)').argParser(backendOption))
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      outputError: (s, write) => write(`peft-ts: ${s.replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ').trim()}\n`),
    })
    .showSuggestionAfterError(true)
    .helpCommand('help [command]', 'show help for a command');
  registerTrain(program, io);
  const xlora = program.command('xlora').description('X-LoRA: train a mixture-of-LoRA-experts classifier');
  registerXLoraTrain(xlora, io);
  registerGenerate(program, io);
  registerMerge(program, io);
  registerInspect(program, io);
  registerScalings(program, io);
  return program;
}

/**
 * Runs `peft-ts` with `argv` (the arguments after the program name) and resolves to the exit code: 0 on success,
 * 1 when the command failed, commander's code (1) for usage errors (unknown options, missing values).
 */
export async function run(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by `outputError`.
      return error.exitCode;
    }
    io.stderr(errorLine(error) + '\n');
    if (process.env['PEFT_TS_DEBUG'] === '1' && error instanceof Error && error.stack) io.stderr(error.stack + '\n');
    return 1;
  }
}
