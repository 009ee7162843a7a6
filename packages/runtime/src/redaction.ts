/**
 * Secret masking for everything that leaves a service as text: log lines and
 * stored request/response payloads. Two mechanisms: values under a sensitive
 * key are replaced whole; strings anywhere are scanned for secret-looking
 * patterns.
 */

export interface RedactionPolicy {
  /** Object keys whose values are replaced whole; compared case-insensitively, ignoring '-' and '_'. */
  keys: string[];
  /**
   * Regular expressions, as a source (`AKIA[0-9A-Z]{16}`) or a literal with
   * flags (`/bearer\s+\S+/i`). Every match is replaced, so a pattern keeps
   * surrounding context (`password=`) by putting it in a lookbehind.
   */
  patterns: string[];
  /** What a secret is replaced with; default "[REDACTED]". */
  replacement?: string;
}

export interface Redactor {
  /** A deep copy of `value` with secrets replaced; the input is never modified. */
  redact<T>(value: T): T;
  redactText(text: string): string;
  /** For JSON documents held as text (e.g. JSON columns): parse, redact, stringify. */
  redactJsonText(json: string): string;
  /**
   * The stored form of a JSON document already parsed as `parsed`: `text`
   * itself when nothing in it can be a secret (the common case, and the
   * cheap one), else the redacted re-serialisation.
   */
  redactJson(text: string, parsed: unknown): string;
}

const SECRET_ASSIGNMENT_KEYS = [
  'password|passwd|pwd',
  '(?:client[-_]?)?secret',
  '(?:access|refresh|id|session)[-_]?token|token',
  '(?:x[-_]?)?api[-_]?key|private[-_]?key',
].join('|');

/**
 * A default pattern and the lower-case literals at least one of which any
 * match must contain. Scanning the text once for those literals lets the
 * common payload (no secret at all) skip the regular expressions, whose
 * lookbehinds would otherwise be tried at every position.
 */
interface GatedPattern {
  pattern: string;
  needles: readonly string[];
}

const DEFAULT_PATTERNS: readonly GatedPattern[] = [
  // HTTP bearer credentials: "Bearer [REDACTED]".
  { pattern: String.raw`/(?<=\bBearer\s+)[A-Za-z0-9\-._~+/]+=*/gi`, needles: ['bearer'] },
  // HTTP basic credentials. The token must mix lower case with upper case or
  // digits, as base64 of "user:password" does, so prose like "Basic authentication" stays.
  {
    pattern: String.raw`(?<=\b[Bb]asic\s+)(?=[A-Za-z0-9+/]*?[a-z][A-Za-z0-9+/]*?[A-Z0-9])[A-Za-z0-9+/]{8,}={0,2}`,
    needles: ['basic'],
  },
  // JSON Web Tokens: three base64url segments, the header starting with '{"' (eyJ).
  { pattern: String.raw`\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`, needles: ['eyj'] },
  { pattern: String.raw`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----`, needles: ['-----begin '] },
  // AWS access key ids (long-lived AKIA, temporary ASIA).
  { pattern: String.raw`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`, needles: ['akia', 'asia'] },
  // API secret keys: "sk-..." (OpenAI, Anthropic) and "sk_live_..."/"rk_test_..." (Stripe).
  { pattern: String.raw`\bsk-[A-Za-z0-9_-]{16,}`, needles: ['sk-'] },
  { pattern: String.raw`\b[rs]k_(?:live|test)_[A-Za-z0-9]{10,}`, needles: ['k_live_', 'k_test_'] },
  // "password=...", "api_key: ..." in URLs, query strings, connection strings and prose.
  {
    pattern: String.raw`/(?<=\b(?:${SECRET_ASSIGNMENT_KEYS})["']?\s*[=:]\s*["']?)[^\s&;,"'<>]+/gi`,
    needles: ['password', 'passwd', 'pwd', 'secret', 'token', 'api', 'private'],
  },
  // URL credentials: postgres://user:[REDACTED]@host
  { pattern: String.raw`(?<=[a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+(?=@)`, needles: ['://'] },
];

export const DEFAULT_REDACTION_POLICY: Readonly<Required<RedactionPolicy>> = Object.freeze({
  keys: [
    'authorization',
    'proxyauthorization',
    'password',
    'passwd',
    'pwd',
    'secret',
    'clientsecret',
    'token',
    'accesstoken',
    'refreshtoken',
    'idtoken',
    'apikey',
    'xapikey',
    'cookie',
    'setcookie',
    'privatekey',
    'sessiontoken',
    'credentials',
  ],
  patterns: DEFAULT_PATTERNS.map((p) => p.pattern),
  replacement: '[REDACTED]',
});

function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, '');
}

/** Compiles a policy pattern; throws SyntaxError for an invalid one. */
export function compilePattern(pattern: string): RegExp {
  const literal = /^\/(.+)\/([dgimsuvy]*)$/s.exec(pattern);
  if (!literal) return new RegExp(pattern, 'g');
  return new RegExp(literal[1], `g${literal[2].replace('g', '')}`);
}

/** A redactor for the default policy plus `extra` keys and patterns (and replacement, if given). */
export function createRedactor(extra: Partial<RedactionPolicy> = {}): Redactor {
  const replacement = extra.replacement ?? DEFAULT_REDACTION_POLICY.replacement;
  const keys = new Set([...DEFAULT_REDACTION_POLICY.keys, ...(extra.keys ?? [])].map(normalizeKey));
  // A policy's own patterns have no known needles: they always run.
  const gated = [...DEFAULT_PATTERNS, ...(extra.patterns ?? []).map((pattern) => ({ pattern, needles: [] }))].map((p) => ({
    regex: compilePattern(p.pattern),
    needles: p.needles,
  }));
  const patterns = gated.map((p) => p.regex);
  const ungated = gated.filter((p) => p.needles.length === 0).map((p) => p.regex);
  // One pass over the lower-cased text finds whether any needle is there at all.
  const escape = (literal: string): string => literal.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  const needleScreen = new RegExp(gated.flatMap((p) => p.needles).map(escape).join('|'));
  // A JSON document also needs a closer look when it names a secret key, separators ignored as isSecretKey does.
  const keyOrNeedleScreen = new RegExp(
    [...[...keys].map((key) => [...key].map(escape).join('[-_]*')), needleScreen.source].join('|'),
  );
  /** The patterns that can match `lower` (the text in lower case). */
  const candidates = (lower: string): RegExp[] => {
    if (!needleScreen.test(lower)) return ungated;
    return gated.filter((p) => p.needles.length === 0 || p.needles.some((n) => lower.includes(n))).map((p) => p.regex);
  };

  const redactText = (text: string): string =>
    candidates(text.toLowerCase()).reduce((masked, pattern) => masked.replace(pattern, replacement), text);

  const isSecretKey = (key: unknown): boolean => typeof key === 'string' && keys.has(normalizeKey(key));

  // `copies` maps each object already visited to its copy, so cycles and shared references are preserved.
  const redactValue = (value: unknown, copies: Map<object, unknown>): unknown => {
    if (typeof value === 'string') return redactText(value);
    if (typeof value !== 'object' || value === null) return value;
    const seen = copies.get(value);
    if (seen !== undefined) return seen;

    if (Array.isArray(value)) {
      const copy: unknown[] = [];
      copies.set(value, copy);
      for (const item of value) copy.push(redactValue(item, copies));
      return copy;
    }
    if (value instanceof Map) {
      const copy = new Map<unknown, unknown>();
      copies.set(value, copy);
      for (const [k, v] of value) copy.set(k, isSecretKey(k) ? replacement : redactValue(v, copies));
      return copy;
    }
    // Dates, Buffers and the like serialize themselves and hold no keyed secrets.
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function' || ArrayBuffer.isView(value)) return value;

    // Keeping the prototype keeps the type (e.g. an Error's class name) for serializers downstream.
    const copy = Object.create(Object.getPrototypeOf(value) as object | null) as Record<string, unknown>;
    copies.set(value, copy);
    if (value instanceof Error) {
      // message, stack and cause are own but non-enumerable on real errors.
      copy.message = redactText(value.message);
      if (value.stack !== undefined) copy.stack = redactText(value.stack);
      if (value.cause !== undefined) copy.cause = redactValue(value.cause, copies);
    }
    for (const [key, v] of Object.entries(value)) {
      copy[key] = isSecretKey(key) ? replacement : redactValue(v, copies);
    }
    return copy;
  };

  // A text-level screen for JSON text is sound only if every pattern matches the
  // raw text wherever it matches a string inside it: true unless a pattern is
  // anchored (^ or $ outside a character class) or the text has escapes (\).
  const screenable = patterns.every((p) => !/[$^]/.test(p.source.replace(/\\./g, '').replace(/\[[^\]]*\]/g, '')));
  const mayHoldSecret = (text: string): boolean => {
    if (!screenable || text.includes('\\') || keyOrNeedleScreen.test(text.toLowerCase())) return true;
    return ungated.some((pattern) => {
      pattern.lastIndex = 0;
      return pattern.test(text);
    });
  };

  return {
    redact: <T>(value: T): T => redactValue(value, new Map()) as T,
    redactText,
    redactJsonText: (json: string): string => JSON.stringify(redactValue(JSON.parse(json), new Map())),
    redactJson: (text, parsed) => (mayHoldSecret(text) ? JSON.stringify(redactValue(parsed, new Map())) : text),
  };
}
