import { connectionlog } from '@mcp/proto';

const { EventType } = connectionlog;

/** EVENT_TYPE_USAGE_RECORDED -> "usage_recorded". */
export function eventTypeName(type: connectionlog.EventType): string {
  const name = connectionlog.eventTypeToJSON(type);
  return name.startsWith('EVENT_TYPE_') ? name.slice('EVENT_TYPE_'.length).toLowerCase() : name.toLowerCase();
}

/** The short names accepted on the command line, in enum order. */
export const EVENT_TYPE_NAMES = Object.values(EventType)
  .filter((v): v is connectionlog.EventType => typeof v === 'number' && v > 0)
  .map(eventTypeName);

/** "usage_recorded", "USAGE_RECORDED" or "EVENT_TYPE_USAGE_RECORDED" -> the enum value, else undefined. */
export function parseEventType(text: string): connectionlog.EventType | undefined {
  const upper = text.trim().toUpperCase().replace(/-/g, '_');
  const full = upper.startsWith('EVENT_TYPE_') ? upper : `EVENT_TYPE_${upper}`;
  const value = connectionlog.eventTypeFromJSON(full);
  return value > 0 ? value : undefined;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local time, "2025-01-31 14:05:09.123". */
export function formatTime(date: Date | undefined): string {
  if (!date) return '-';
  const d = date;
  const ms = String(d.getMilliseconds()).padStart(3, '0');
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${ms}`;
}

export function formatLatency(ms: number | undefined): string {
  return ms === undefined ? '-' : `${ms} ms`;
}

/** One line: newlines and runs of spaces collapsed. */
export function oneLine(text: string | undefined): string {
  return (text ?? '').replace(/\s+/g, ' ').trim();
}

function truncate(text: string, width: number): string {
  if (width <= 1) return text.slice(0, Math.max(0, width));
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

/**
 * A plain text table. On a terminal the last column is cut to fit its
 * width; piped output is never cut.
 */
export function table(headers: string[], rows: string[][], out: NodeJS.WriteStream = process.stdout): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const last = headers.length - 1;
  const columns = out.isTTY ? out.columns : undefined;
  if (columns) {
    const used = widths.slice(0, last).reduce((sum, w) => sum + w + 2, 0);
    widths[last] = Math.max(headers[last].length, Math.min(widths[last], columns - used - 1));
  }
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === last ? truncate(cell, widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function eventRows(events: connectionlog.ConnectionEvent[]): string[][] {
  return events.map((e) => [
    formatTime(e.timestamp),
    eventTypeName(e.eventType),
    e.connectionId,
    formatLatency(e.latencyMs),
    eventSummary(e),
  ]);
}

export const EVENT_HEADERS = ['TIME', 'TYPE', 'CONNECTION', 'LATENCY', 'DETAILS'];

/** Details, plus a status move or the error when there is one. */
export function eventSummary(e: connectionlog.ConnectionEvent): string {
  const parts = [oneLine(e.eventDetails)];
  if (e.oldStatus !== undefined || e.newStatus !== undefined) parts.push(`[${[e.oldStatus, '->', e.newStatus].filter((x) => x !== undefined).join(' ')}]`);
  if (e.errorData !== undefined) parts.push(`error=${oneLine(e.errorData)}`);
  return parts.filter(Boolean).join(' ');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Column widths for events printed one at a time (tail), where no table can be measured first. */
const STREAM_WIDTHS = [23, 14, 36, 8];

export function streamLine(cells: string[]): string {
  return cells
    .map((cell, i) => (i < STREAM_WIDTHS.length ? cell.padEnd(STREAM_WIDTHS[i]) : cell))
    .join('  ')
    .trimEnd();
}

export function eventLine(event: connectionlog.ConnectionEvent): string {
  return streamLine(eventRows([event])[0]);
}
