/**
 * A small command-line parser: `--name value`, `--name=value`, boolean flags,
 * repeatable options, and a generated `--help` for every command. No
 * positional arguments beyond the command words.
 */

export type OptionType = 'string' | 'boolean' | 'integer';

export interface OptionSpec {
  type: OptionType;
  description: string;
  /** Placeholder shown in help, e.g. "<uuid>". */
  value?: string;
  required?: boolean;
  repeatable?: boolean;
  /** Shown in help only; defaults are applied by the command. */
  default?: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

/** Parsed values, keyed by option name without the leading dashes. */
export interface ParsedOptions {
  string(name: string): string | undefined;
  strings(name: string): string[];
  integer(name: string): number | undefined;
  boolean(name: string): boolean;
  has(name: string): boolean;
}

/** Bad command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
    /** Print all of `usage`, not just its first line (for a missing or unknown command). */
    readonly fullUsage = false,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export const GLOBAL_OPTIONS: OptionSpecs = {
  address: {
    type: 'string',
    value: '<host:port>',
    description: 'service address',
    default: '$MCP_CONNECTION_LOG_ADDRESS or 127.0.0.1:50051',
  },
  'api-key': {
    type: 'string',
    value: '<key>',
    description: 'API key, sent as "authorization: Bearer <key>"',
    default: '$MCP_API_KEY, which `npm start` prints',
  },
  'deadline-ms': { type: 'integer', value: '<ms>', description: 'deadline of each call', default: '10000' },
  json: { type: 'boolean', description: 'print the raw responses as JSON' },
  help: { type: 'boolean', description: 'show help' },
};

/** Options of GLOBAL_OPTIONS that take a value (needed to find command words before the command is known). */
function takesValue(specs: OptionSpecs, name: string): boolean {
  return specs[name] !== undefined && specs[name].type !== 'boolean';
}

/**
 * The words before the first option that is not a global one, e.g.
 * `--json events list --limit 3` -> ["events", "list"].
 */
export function commandWords(argv: readonly string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h') continue;
    if (arg.startsWith('--')) {
      const name = arg.slice(2).split('=')[0];
      if (!(name in GLOBAL_OPTIONS)) break;
      if (!arg.includes('=') && takesValue(GLOBAL_OPTIONS, name)) i++;
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') break;
    words.push(arg);
  }
  return words;
}

/** Parses `argv` against `specs` (which should include GLOBAL_OPTIONS); `words` are the command words to skip. */
export function parseOptions(argv: readonly string[], specs: OptionSpecs, words: readonly string[], usage: string): ParsedOptions {
  const values = new Map<string, Array<string | boolean>>();
  const expectedWords = [...words];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h') {
      values.set('help', [true]);
      continue;
    }
    if (!arg.startsWith('--')) {
      if (expectedWords[0] === arg) {
        expectedWords.shift();
        continue;
      }
      throw new UsageError(`unexpected argument "${arg}"`, usage);
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs[name];
    if (!spec) throw new UsageError(`unknown option --${name}`, usage);
    let value: string | boolean;
    if (spec.type === 'boolean') {
      if (eq !== -1) {
        const text = arg.slice(eq + 1);
        if (text !== 'true' && text !== 'false') throw new UsageError(`--${name} takes no value (or =true/=false)`, usage);
        value = text === 'true';
      } else {
        value = true;
      }
    } else {
      if (eq !== -1) {
        value = arg.slice(eq + 1);
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value ${spec.value ?? ''}`.trimEnd(), usage);
        value = argv[++i];
      }
      if (spec.type === 'integer' && !/^-?\d+$/.test(value)) {
        throw new UsageError(`--${name} must be an integer (got "${value}")`, usage);
      }
    }
    const list = values.get(name) ?? [];
    if (list.length > 0 && !spec.repeatable) throw new UsageError(`--${name} given more than once`, usage);
    list.push(value);
    values.set(name, list);
  }

  const parsed: ParsedOptions = {
    string: (name) => values.get(name)?.[0] as string | undefined,
    strings: (name) => (values.get(name) ?? []) as string[],
    integer: (name) => {
      const v = values.get(name)?.[0];
      return v === undefined ? undefined : Number(v);
    },
    boolean: (name) => values.get(name)?.[0] === true,
    has: (name) => values.has(name),
  };
  if (parsed.boolean('help')) return parsed;
  const missing = Object.entries(specs)
    .filter(([name, spec]) => spec.required && !values.has(name))
    .map(([name]) => `--${name}`);
  if (missing.length > 0) throw new UsageError(`missing required option${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, usage);
  return parsed;
}

function optionLines(specs: OptionSpecs): string[] {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const left = `--${name}${spec.value ? ` ${spec.value}` : ''}`;
    const notes = [
      spec.required ? 'required' : undefined,
      spec.repeatable ? 'repeatable' : undefined,
      spec.default ? `default ${spec.default}` : undefined,
    ].filter(Boolean);
    return [left, `${spec.description}${notes.length ? ` (${notes.join('; ')})` : ''}`];
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`);
}

/** The help text of one command. */
export function formatUsage(command: string, summary: string, specs: OptionSpecs, details: string[] = []): string {
  return [
    `usage: mcpctl ${command} [options]`,
    '',
    summary,
    ...(details.length ? ['', ...details] : []),
    '',
    'options:',
    ...optionLines(specs),
    '',
    'global options:',
    ...optionLines(GLOBAL_OPTIONS),
  ].join('\n');
}
