/** Builds parameterised WHERE clauses: values only ever travel as $n parameters. */
export class SqlConditions {
  readonly clauses: string[] = [];
  readonly params: unknown[] = [];

  /** `sql` receives the $n placeholders of `values`, in order. */
  add(sql: (...refs: string[]) => string, ...values: unknown[]): void {
    const refs = values.map((value) => this.param(value));
    this.clauses.push(sql(...refs));
  }

  param(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  where(): string {
    return this.clauses.length === 0 ? '' : `WHERE ${this.clauses.join(' AND ')}`;
  }
}

/**
 * A timestamptz as ISO 8601 text with its microseconds, for keyset cursors:
 * JavaScript Dates keep milliseconds only, and a cursor that lost precision
 * would repeat or skip rows.
 */
export function exactTimestamp(column: string): string {
  return `to_char((${column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/**
 * A one-dimensional PostgreSQL array literal (`{"a","b",NULL}`) for a bulk
 * parameter such as `$1::uuid[]` in `unnest(...)`. The same text node-pg would
 * send for an array, built with one scan per element instead of its two
 * regular-expression replaces and local-time date formatting, which show up
 * at ingest rates. Dates become ISO 8601 UTC; null and undefined become NULL.
 */
export function arrayLiteral(values: readonly (string | number | bigint | Date | null | undefined)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else if (typeof v === 'string') parts[i] = v.includes('"') || v.includes('\\') ? `"${v.replace(/["\\]/g, '\\$&')}"` : `"${v}"`;
    else if (v instanceof Date) parts[i] = `"${v.toISOString()}"`;
    else parts[i] = String(v);
  }
  return `{${parts.join(',')}}`;
}

/**
 * One line of COPY … FROM STDIN text format: tab-separated, `\N` for NULL,
 * newline-terminated, with backslash, tab, newline and carriage return
 * escaped. Dates become ISO 8601 UTC.
 */
export function copyTextLine(values: readonly (string | number | bigint | Date | null | undefined)[]): string {
  let line = '';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) line += '\t';
    if (v === null || v === undefined) line += '\\N';
    else if (typeof v === 'string') line += COPY_SPECIAL.test(v) ? v.replace(COPY_SPECIAL_ALL, escapeCopyChar) : v;
    else if (v instanceof Date) line += v.toISOString();
    else line += String(v);
  }
  return `${line}\n`;
}

const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_SPECIAL_ALL = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
function escapeCopyChar(c: string): string {
  return COPY_ESCAPES[c];
}
