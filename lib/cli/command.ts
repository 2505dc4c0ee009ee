// What a `dino` command is: a one-line summary for `dino --help`, its usage text for
// `dino <command> --help`, and what it runs. run() may be async; it returns nothing on success or an
// exit code of its own. A UsageError (a mistake in how the command was called) exits with 2 and the
// usage hint; any other error is a message for the user and exits with 1. Neither prints a stack trace.
export { UsageError } from './options.ts';

export interface Command {
  summary: string;
  usage: string;
  run(args: string[]): void | number | Promise<void | number>;
}
