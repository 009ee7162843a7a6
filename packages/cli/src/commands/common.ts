import { connectionlog } from '@mcp/proto';
import { UsageError, type OptionSpecs, type ParsedOptions } from '../args';
import { EVENT_TYPE_NAMES, parseEventType } from '../format';
import type { CallContext } from '../grpc';

/** One `mcpctl` command. */
export interface Command {
  /** The command words, e.g. "events list". */
  name: string;
  summary: string;
  options: OptionSpecs;
  /** Extra help paragraphs (examples, formats). */
  details?: string[];
  /** Resolves to the exit code (default 0). `usage` is this command's help, for UsageErrors. */
  run(opts: ParsedOptions, ctx: CallContext, usage: string): Promise<number | void>;
}

/** Filter options shared by `events list` and `events tail`. */
export const FILTER_OPTIONS: OptionSpecs = {
  'connection-id': { type: 'string', value: '<uuid>', description: 'only this connection', repeatable: true },
  'agent-id': { type: 'string', value: '<uuid>', description: "only this agent's connections" },
  type: {
    type: 'string',
    value: '<type>',
    description: `only this event type: ${EVENT_TYPE_NAMES.join('|')} (comma-separated list allowed)`,
    repeatable: true,
  },
  'errors-only': { type: 'boolean', description: 'only events of type error' },
};

export function eventTypeOption(text: string, usage: string, flag = '--type'): connectionlog.EventType {
  const type = parseEventType(text);
  if (type === undefined) throw new UsageError(`${flag}: unknown event type "${text}" (one of ${EVENT_TYPE_NAMES.join(', ')})`, usage);
  return type;
}

const RELATIVE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/i;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** An ISO 8601 time, or a duration ago: "90s", "30m", "1h", "7d". */
export function timeOption(text: string, flag: string, usage: string, now = Date.now()): Date {
  const relative = RELATIVE.exec(text.trim());
  if (relative) return new Date(now - Number(relative[1]) * UNIT_MS[relative[2].toLowerCase()]);
  // Require at least a date: Date.parse accepts surprising things ("1").
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) throw new UsageError(`${flag}: expected an ISO 8601 time or a duration like 30m, 1h, 7d (got "${text}")`, usage);
  return new Date(ms);
}

export function positiveInteger(opts: ParsedOptions, name: string, usage: string): number | undefined {
  const value = opts.integer(name);
  if (value !== undefined && value <= 0) throw new UsageError(`--${name} must be a positive integer`, usage);
  return value;
}

/** The EventFilter of the filter options (plus --since/--until when the command has them). */
export function eventFilter(opts: ParsedOptions, usage: string): connectionlog.EventFilter {
  const types = opts
    .strings('type')
    .flatMap((t) => t.split(','))
    .filter((t) => t.trim() !== '')
    .map((t) => eventTypeOption(t, usage));
  const since = opts.string('since');
  const until = opts.string('until');
  return connectionlog.EventFilter.fromPartial({
    connectionIds: opts.strings('connection-id'),
    agentId: opts.string('agent-id') ?? '',
    eventTypes: types,
    errorsOnly: opts.boolean('errors-only'),
    startTime: since === undefined ? undefined : timeOption(since, '--since', usage),
    endTime: until === undefined ? undefined : timeOption(until, '--until', usage),
  });
}

/** How to invoke mcpctl in hints: through the root npm script when that is how it was started. */
export function mcpctlInvocation(): string {
  return process.env.npm_lifecycle_event === 'mcpctl' ? 'npm run mcpctl --' : 'mcpctl';
}
