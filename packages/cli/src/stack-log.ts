/**
 * Log lines of the local stack: every line carries the name of the process
 * it came from; the services' JSON lines (pino) are shown as text.
 */

const useColor = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

const COLORS = [36, 35, 33, 32, 34, 96, 95, 93];
const LEVEL_COLORS: Record<string, number> = { trace: 90, debug: 90, info: 32, warn: 33, error: 31, fatal: 41 };

function paint(code: number, text: string): string {
  return useColor ? `\x1b[${code}m${text}\x1b[0m` : text;
}

export function dim(text: string): string {
  return paint(2, text);
}

export function bold(text: string): string {
  return paint(1, text);
}

let nameWidth = 14;
const nameColors = new Map<string, number>();

/** Widens the name column to fit every process of the stack. */
export function registerNames(names: string[]): void {
  nameWidth = Math.max(nameWidth, ...names.map((n) => n.length));
  for (const name of names) if (!nameColors.has(name)) nameColors.set(name, COLORS[nameColors.size % COLORS.length]);
}

function prefix(name: string): string {
  if (!nameColors.has(name)) registerNames([name]);
  return `${paint(nameColors.get(name)!, name.padEnd(nameWidth))} ${dim('|')}`;
}

function clock(date: Date): string {
  return date.toTimeString().slice(0, 8) + '.' + String(date.getMilliseconds()).padStart(3, '0');
}

/** The stack's own messages. */
export function say(name: string, message: string): void {
  for (const line of message.split('\n')) process.stdout.write(`${prefix(name)} ${line}\n`);
}

const HIDDEN_KEYS = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname', 'trace_id', 'span_id']);

function renderValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value && typeof value === 'object' && 'message' in value && typeof (value as { message: unknown }).message === 'string') {
    return JSON.stringify((value as { message: string }).message);
  }
  return JSON.stringify(value);
}

/** One pino JSON line -> "12:00:01.234 INFO  listening address=127.0.0.1:50051". Other text is kept as is. */
export function prettyLine(line: string): string {
  if (!line.startsWith('{')) return line;
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = typeof entry.level === 'string' ? entry.level : typeof entry.level === 'number' ? pinoLevel(entry.level) : 'info';
  const time = typeof entry.time === 'string' || typeof entry.time === 'number' ? new Date(entry.time) : new Date();
  const fields = Object.entries(entry)
    .filter(([k]) => !HIDDEN_KEYS.has(k))
    .map(([k, v]) => `${dim(`${k}=`)}${renderValue(v)}`);
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  return [dim(clock(time)), paint(LEVEL_COLORS[level] ?? 0, level.toUpperCase().padEnd(5)), msg, ...fields].filter(Boolean).join(' ');
}

function pinoLevel(n: number): string {
  return n >= 60 ? 'fatal' : n >= 50 ? 'error' : n >= 40 ? 'warn' : n >= 30 ? 'info' : n >= 20 ? 'debug' : 'trace';
}

/** Writes a child's output line by line: prefixed and pretty, or raw JSON when LOG_FORMAT=json. */
export function pipeLines(name: string, stream: NodeJS.ReadableStream, raw: boolean): void {
  let pending = '';
  stream.setEncoding('utf8');
  const emit = (line: string) => {
    if (line === '') return;
    process.stdout.write(raw ? `${line}\n` : `${prefix(name)} ${prettyLine(line)}\n`);
  };
  stream.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) emit(line);
  });
  stream.on('end', () => {
    emit(pending);
    pending = '';
  });
}

/** A box around lines (ANSI colour codes do not count towards the width). */
export function box(lines: string[]): string {
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  const width = Math.max(...lines.map(visible));
  return [
    `╭${'─'.repeat(width + 2)}╮`,
    ...lines.map((l) => `│ ${l}${' '.repeat(width - visible(l))} │`),
    `╰${'─'.repeat(width + 2)}╯`,
  ].join('\n');
}

/** postgres://postgres:****@127.0.0.1:54329/postgres */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '****';
    return u.toString();
  } catch {
    return '<unparseable database URL>';
  }
}
