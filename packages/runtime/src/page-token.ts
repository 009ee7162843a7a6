import { createHash } from 'node:crypto';
import { InvalidArgumentError } from './errors';

/**
 * Opaque keyset-pagination tokens. A token is bound to the request that
 * produced it (a hash of its filter), so it cannot be replayed against a
 * different query and silently return the wrong rows.
 */
export function encodePageToken(position: object, boundTo: unknown): string {
  return Buffer.from(JSON.stringify({ p: position, b: requestHash(boundTo) })).toString('base64url');
}

export function decodePageToken<T extends object>(
  token: string,
  boundTo: unknown,
  field = 'page_token',
): T {
  let decoded: { p?: unknown; b?: unknown };
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidArgumentError([{ field, description: 'malformed token' }]);
  }
  if (typeof decoded !== 'object' || decoded === null || typeof decoded.p !== 'object' || decoded.p === null) {
    throw new InvalidArgumentError([{ field, description: 'malformed token' }]);
  }
  if (decoded.b !== requestHash(boundTo)) {
    throw new InvalidArgumentError([{ field, description: 'token was issued for a different request' }]);
  }
  return decoded.p as T;
}

function requestHash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value ?? null)).digest('base64url').slice(0, 16);
}

/** Clamps a requested page size: 0 means the default. */
export function pageSize(requested: number, defaultSize = 100, max = 1000): number {
  if (!Number.isFinite(requested) || requested <= 0) return defaultSize;
  return Math.min(Math.floor(requested), max);
}

/**
 * Keyset pagination: the repository fetched `size + 1` rows; the extra row,
 * if any, only tells that another page exists. Returns the page and the
 * token of the next one ('' on the last page).
 */
export function keysetPage<R>(rows: R[], size: number, nextToken: (last: R) => string): { page: R[]; nextPageToken: string } {
  const page = rows.slice(0, size);
  const last = page[page.length - 1];
  return { page, nextPageToken: rows.length > size && last !== undefined ? nextToken(last) : '' };
}
