#!/usr/bin/env node
/**
 * mcpctl: a command-line client for the connection-log service (and the
 * health of any service), on the generated gRPC stubs.
 */
import { shutdownTelemetry } from '@mcp/runtime';
import { commandWords, formatUsage, GLOBAL_OPTIONS, parseOptions, UsageError } from './args';
import { COMMANDS, type Command } from './commands';
import { DEFAULT_ADDRESS, describeServiceError, isServiceError, type CallContext } from './grpc';

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: mcpctl <command> [options]',
    '',
    'A command-line client for the MCP telemetry services (start them with `npm start`).',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'global options:',
    ...Object.entries(GLOBAL_OPTIONS).map(([name, spec]) => {
      const left = `--${name}${spec.value ? ` ${spec.value}` : ''}`;
      return `  ${left.padEnd(24)}  ${spec.description}${spec.default ? ` (default ${spec.default})` : ''}`;
    }),
    '',
    'Run `mcpctl <command> --help` for the options of a command.',
  ].join('\n');
}

/** Help for a partial command ("mcpctl events"): its subcommands. */
function groupUsage(prefix: string, commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [`usage: mcpctl ${prefix} <subcommand> [options]`, '', 'subcommands:', ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const words = commandWords(argv);
  const wantsHelp = argv.includes('--help') || argv.includes('-h');
  if (words.length === 0) {
    if (wantsHelp || argv.length === 0) {
      console.log(overview());
      return argv.length === 0 ? 2 : 0;
    }
    throw new UsageError('no command given', overview(), true);
  }
  // The longest command whose words the arguments start with.
  const command = COMMANDS.filter((c) => {
    const cw = c.name.split(' ');
    return cw.length <= words.length && cw.every((w, i) => w === words[i]);
  }).sort((a, b) => b.name.length - a.name.length)[0];
  if (!command) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${words[0]} `));
    if (group.length > 0) {
      const usage = groupUsage(words[0], group);
      if (wantsHelp && words.length === 1) {
        console.log(usage);
        return 0;
      }
      throw new UsageError(words.length > 1 ? `unknown subcommand "${words.slice(0, 2).join(' ')}"` : `"${words[0]}" needs a subcommand`, usage, true);
    }
    throw new UsageError(`unknown command "${words[0]}"`, overview(), true);
  }

  const usage = formatUsage(command.name, command.summary, command.options, command.details);
  const opts = parseOptions(argv, { ...GLOBAL_OPTIONS, ...command.options }, command.name.split(' '), usage);
  if (opts.boolean('help')) {
    console.log(usage);
    return 0;
  }
  const deadlineMs = opts.integer('deadline-ms') ?? 10_000;
  if (deadlineMs <= 0) throw new UsageError('--deadline-ms must be positive', usage);
  const ctx: CallContext = {
    address: opts.string('address') || process.env.MCP_CONNECTION_LOG_ADDRESS || DEFAULT_ADDRESS,
    deadlineMs,
    json: opts.boolean('json'),
    apiKey: opts.string('api-key') || process.env.MCP_API_KEY || undefined,
  };
  try {
    return (await command.run(opts, ctx, usage)) ?? 0;
  } catch (err) {
    if (!isServiceError(err)) throw err;
    for (const line of describeServiceError(err, ctx.address)) console.error(line);
    return 1;
  }
}

function exit(code: number): void {
  // Flush the spans of this run (when started with the telemetry preload), and
  // let stdout drain (it may be a pipe), before leaving.
  process.exitCode = code;
  shutdownTelemetry()
    .catch(() => undefined)
    .then(() => {
      if (process.stdout.writableLength === 0) process.exit(code);
      else process.stdout.once('drain', () => process.exit(code));
    });
}

if (require.main === module) {
  main(process.argv.slice(2)).then(exit, (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}`);
      if (err.usage && err.fullUsage) console.error(`\n${err.usage}`);
      else if (err.usage) console.error(`${err.usage.split('\n')[0]}   (--help for details)`);
      exit(2);
      return;
    }
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    exit(1);
  });
}
