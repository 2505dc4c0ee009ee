// The `dino` command line. Each command is an entry in the table below: a one-line summary for
// `dino --help`, its usage text for `dino <command> --help`, and what it runs.
//
//   node --import tsx scripts/dino.ts <command> [arguments]
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import { convert } from '../lib/io/convert.ts';

interface Command {
  summary: string;
  usage: string;
  run(args: string[]): void;
}

// A mistake in how the command was called: reported with the usage hint, without a stack trace.
class UsageError extends Error {}

const commands: Record<string, Command> = {
  convert: {
    summary: 'convert between official .pth files and safetensors',
    usage: `usage: dino convert INPUT OUTPUT

Converts by file extension (.pth or .pt, and .safetensors):
  .pth -> .safetensors  an official DINO training checkpoint (student, teacher, optimizer, epoch,
                        args, dino_loss, fp16_scaler) becomes a dino-ts checkpoint; a state dict
                        (such as the released backbone-only weights) a plain safetensors file
  .safetensors -> .pth  a dino-ts checkpoint becomes the official training-checkpoint layout (student
                        keys with 'module.'); a plain safetensors file a state dict

Tensors read from .pth files become float32 (float16 and bfloat16 convert exactly); tensors read from
safetensors keep their dtype. The output file is replaced atomically. See docs/CHECKPOINTS.md.`,
    run(args) {
      if (args.length !== 2 || args.some((a) => a.startsWith('-'))) throw new UsageError('convert takes exactly two file names: INPUT OUTPUT');
      console.log(convert(args[0], args[1]));
    },
  },
};

function overview(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const list = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return ['usage: dino <command> [arguments]', '', 'commands:', ...list, '', "'dino <command> --help' describes a command."].join('\n');
}

// Runs a command line (without the program name) and returns the exit code.
export function main(argv: string[]): number {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview());
    return name === undefined ? 1 : 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    console.error(`dino: unknown command '${name}'\n\n${overview()}`);
    return 1;
  }
  if (args.includes('--help') || args.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    command.run(args);
    return 0;
  } catch (e) {
    // Errors about files and arguments are messages for the user; a stack trace would only bury them.
    const message = e instanceof Error ? e.message : String(e);
    console.error(`dino ${name}: ${message}`);
    if (e instanceof UsageError) console.error(`(dino ${name} --help for usage)`);
    return 1;
  }
}

// Run when this file is the program, not when a test imports it.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main(process.argv.slice(2));
