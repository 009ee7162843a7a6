import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';

const TOKEN_PATTERN = /^mcp_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface NewApiKey {
  /** Shown to its owner once; never stored. */
  token: string;
  prefix: string;
  hash: string;
}

/** mcp_<12-char lookup prefix>_<256-bit secret, base64url>. */
export function generateApiKey(): NewApiKey {
  const prefix = Array.from(randomBytes(12), (b) => PREFIX_ALPHABET[b % PREFIX_ALPHABET.length]).join('');
  const token = `mcp_${prefix}_${randomBytes(32).toString('base64url')}`;
  return { token, prefix, hash: hashApiKey(token) };
}

export function hashApiKey(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function hashesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

export type PresentedKey =
  | { kind: 'missing' }
  | { kind: 'malformed' }
  | { kind: 'key'; prefix: string; hash: string };

/** Reads `authorization: Bearer mcp_…` metadata. */
export function presentedKey(metadata: grpc.Metadata): PresentedKey {
  const values = metadata.get('authorization');
  if (values.length === 0) return { kind: 'missing' };
  const header = String(values[0]);
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  const token = match?.[1];
  const parts = token ? TOKEN_PATTERN.exec(token) : null;
  if (values.length > 1 || !token || !parts) return { kind: 'malformed' };
  return { kind: 'key', prefix: parts[1], hash: hashApiKey(token) };
}
