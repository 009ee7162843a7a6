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
