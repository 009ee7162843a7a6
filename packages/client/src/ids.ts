export { uuidv7 } from '@mcp/proto';

/**
 * A client timestamp for an event: millisecond precision, which is what the
 * services store and return, so (id, timestamp) round-trips exactly. When the
 * id is a UUIDv7 assigned together with it, both carry the same millisecond.
 */
export function eventTime(ms: number = Date.now()): Date {
  return new Date(Math.floor(ms));
}
