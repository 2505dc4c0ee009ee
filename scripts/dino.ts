// The `dino` command line: the table of commands (each defined in lib/cli/) and the dispatcher.
//
//   npx dino <command> [arguments]                 (the compiled JavaScript, package.json "bin")
//   node --import tsx scripts/dino.ts <command>    (from a checkout)
//   deno run -A scripts/dino.ts <command>
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import { UsageError, type Command } from '../lib/cli/command.ts';
import { attentionCommand } from '../lib/cli/attention.ts';
import { convertCommand } from '../lib/cli/convert.ts';
import { demoCommand } from '../lib/cli/demo.ts';
import { embedCommand } from '../lib/cli/embed.ts';
import { evalKnnCommand } from '../lib/cli/eval-knn.ts';
import { evalLinearCommand } from '../lib/cli/eval-linear.ts';
import { infoCommand } from '../lib/cli/info.ts';
import { trainCommand } from '../lib/cli/train.ts';

// In the order `dino --help` lists them: the pipeline's.
const commands: Record<string, Command> = {
  demo: demoCommand,
  train: trainCommand,
  'eval-knn': evalKnnCommand,
  'eval-linear': evalLinearCommand,
  embed: embedCommand,
  attention: attentionCommand,
  convert: convertCommand,
  info: infoCommand,
};

function overview(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const list = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return ['usage: dino <command> [arguments]', '', 'commands:', ...list, '', "'dino <command> --help' describes a command."].join('\n');
}

// Runs a command line (without the program name) and resolves to the exit code: 0 on success, 1 for
// an error, 2 for a command called wrongly.
export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    console.error(`dino: unknown command '${name}'\n\n${overview()}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return (await command.run(args)) ?? 0;
  } catch (e) {
    // Errors about files and arguments are messages for the user; a stack trace would only bury them.
    const message = e instanceof Error ? e.message : String(e);
    console.error(`dino ${name}: ${message}`);
    if (e instanceof UsageError) {
      console.error(`(dino ${name} --help for usage)`);
      return 2;
    }
    return 1;
  }
}

// Run when this file is the program, not when a test imports it.
const self = process.argv[1];
if (self !== undefined && import.meta.url === pathToFileURL(self).href) process.exitCode = await main(process.argv.slice(2));
