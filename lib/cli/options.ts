// Command-line options described once: each option's kind, default and help line give both the parser
// and the usage text. Options are kebab-case (--patch-size); the official scripts' snake_case spellings
// (--patch_size) are accepted too, so their command lines work unchanged. A value follows its option
// (--lr 0.001) or is joined to it (--lr=0.001); list options take the values up to the next option.
// Booleans stand alone (--use-bn-in-head) or take an explicit value the way the official bool_flag
// reads it (--norm_last_layer false).

export class UsageError extends Error {
  override name = 'UsageError';
}

type Kind = 'number' | 'int' | 'string' | 'boolean' | 'numbers' | 'ints' | 'strings';

interface ValueOf {
  number: number;
  int: number;
  string: string;
  boolean: boolean;
  numbers: number[];
  ints: number[];
  strings: string[];
}

export interface OptionSpec<K extends Kind = Kind> {
  kind: K;
  help: string;
  // Absent: the option has no default and is undefined unless given (or an error if `required`).
  default?: ValueOf[K];
  required?: boolean;
  // Allowed values of a string option.
  choices?: readonly string[];
  // Exact number of values of a list option (any number >= 1 otherwise).
  count?: number;
  // For numbers: the smallest allowed value, and whether it is allowed itself.
  min?: number;
  minExclusive?: boolean;
  max?: number;
  // Shown in the usage instead of the kind (e.g. DIR, FILE).
  metavar?: string;
  // Other accepted spellings (without the dashes), e.g. the official batch_size_per_gpu.
  aliases?: readonly string[];
}

export type OptionSpecs = Record<string, OptionSpec>;

// The parsed values, keyed by the camelCase form of each option's name.
export type ParsedOptions<S extends OptionSpecs> = {
  [N in keyof S as CamelCase<N & string>]: S[N] extends OptionSpec<infer K>
    ? S[N] extends { default: unknown } | { required: true }
      ? ValueOf[K]
      : ValueOf[K] | undefined
    : never;
};

type CamelCase<S extends string> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<CamelCase<B>>}` : S;

export const camelCase = (name: string): string => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

// Typed specs with the literal option names kept (for ParsedOptions).
export const defineOptions = <S extends OptionSpecs>(specs: S): S => specs;

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);
const isOption = (arg: string): boolean => /^--[A-Za-z]/.test(arg);

function parseNumber(name: string, spec: OptionSpec, text: string): number {
  const v = text.trim() === '' ? NaN : Number(text);
  const integer = spec.kind === 'int' || spec.kind === 'ints';
  if (!Number.isFinite(v) || (integer && !Number.isSafeInteger(v))) throw new UsageError(`--${name} expects ${integer ? 'an integer' : 'a number'}, got '${text}'`);
  if (spec.min !== undefined && (spec.minExclusive ? v <= spec.min : v < spec.min)) throw new UsageError(`--${name} must be ${spec.minExclusive ? '>' : '>='} ${spec.min}, got ${text}`);
  if (spec.max !== undefined && v > spec.max) throw new UsageError(`--${name} must be <= ${spec.max}, got ${text}`);
  return v;
}

function parseValue(name: string, spec: OptionSpec, texts: string[]): unknown {
  switch (spec.kind) {
    case 'number':
    case 'int':
      return parseNumber(name, spec, texts[0]);
    case 'numbers':
    case 'ints':
      return texts.map((t) => parseNumber(name, spec, t));
    case 'string':
      if (spec.choices !== undefined && !spec.choices.includes(texts[0])) throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}, got '${texts[0]}'`);
      return texts[0];
    case 'strings':
      return texts;
    case 'boolean': {
      const t = texts[0].toLowerCase();
      if (TRUE.has(t)) return true;
      if (FALSE.has(t)) return false;
      throw new UsageError(`--${name} expects true or false, got '${texts[0]}'`);
    }
  }
}

export interface Parsed<S extends OptionSpecs> {
  options: ParsedOptions<S>;
  // The options the command line gave (kebab-case names), as opposed to defaults.
  given: Set<string>;
  // Arguments that are not options, in order.
  positional: string[];
}

export function parseOptions<S extends OptionSpecs>(specs: S, args: readonly string[], { positional = 0 }: { positional?: number } = {}): Parsed<S> {
  const byName = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) {
    for (const alias of [name, name.replace(/-/g, '_'), ...(spec.aliases ?? [])]) byName.set(alias, name);
  }
  const values: Record<string, unknown> = {};
  const given = new Set<string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!isOption(arg)) {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const written = arg.slice(2, eq < 0 ? undefined : eq);
    let name = byName.get(written);
    let negated = false;
    if (name === undefined && written.startsWith('no-') && specs[written.slice(3)]?.kind === 'boolean') {
      name = written.slice(3);
      negated = true;
    }
    if (name === undefined) throw new UsageError(`unknown option --${written}`);
    if (given.has(name)) throw new UsageError(`--${name} is given twice`);
    const spec = specs[name];
    let texts: string[];
    if (eq >= 0) {
      texts = spec.kind === 'numbers' || spec.kind === 'ints' || spec.kind === 'strings' ? arg.slice(eq + 1).split(',') : [arg.slice(eq + 1)];
    } else if (spec.kind === 'boolean') {
      const next = args[i + 1];
      texts = next !== undefined && (TRUE.has(next.toLowerCase()) || FALSE.has(next.toLowerCase())) && !negated ? [args[++i]] : ['true'];
    } else if (spec.kind === 'numbers' || spec.kind === 'ints' || spec.kind === 'strings') {
      texts = [];
      while (i + 1 < args.length && !isOption(args[i + 1]) && (spec.count === undefined || texts.length < spec.count)) texts.push(args[++i]);
    } else {
      if (i + 1 >= args.length || isOption(args[i + 1])) throw new UsageError(`--${name} needs a value`);
      texts = [args[++i]];
    }
    if (texts.length === 0) throw new UsageError(`--${name} needs at least one value`);
    if (spec.count !== undefined && texts.length !== spec.count) throw new UsageError(`--${name} takes ${spec.count} values, got ${texts.length}`);
    let value = parseValue(name, spec, texts);
    if (negated) value = !value;
    values[camelCase(name)] = value;
    given.add(name);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (given.has(name)) continue;
    if (spec.required) throw new UsageError(`--${name} is required`);
    if (spec.default !== undefined) values[camelCase(name)] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  }
  if (rest.length > positional) throw new UsageError(`unexpected argument '${rest[positional]}'`);
  return { options: values as ParsedOptions<S>, given, positional: rest };
}

const METAVARS: Record<Kind, string> = { number: 'X', int: 'N', string: 'S', boolean: '[true|false]', numbers: 'X...', ints: 'N...', strings: 'S...' };

function formatDefault(spec: OptionSpec): string {
  if (spec.required) return ' (required)';
  if (spec.default === undefined) return '';
  const d = Array.isArray(spec.default) ? spec.default.join(' ') : String(spec.default);
  return d === '' ? '' : ` (default: ${d})`;
}

// The options part of a usage text: one entry per option, its help indented under it.
export function describeOptions(specs: OptionSpecs): string {
  return Object.entries(specs)
    .map(([name, spec]) => {
      const metavar = spec.metavar ?? (spec.choices !== undefined ? spec.choices.join('|') : spec.count !== undefined ? Array(spec.count).fill(METAVARS[spec.kind][0]).join(' ') : METAVARS[spec.kind]);
      return `  --${name} ${metavar}${formatDefault(spec)}\n      ${spec.help}`;
    })
    .join('\n');
}
