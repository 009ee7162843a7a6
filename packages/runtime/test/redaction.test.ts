import { trace } from '@opentelemetry/api';
import { node } from '@opentelemetry/sdk-node';
import { describe, expect, it } from 'vitest';
import { DEFAULT_REDACTION_POLICY, compilePattern, createRedactor } from '../src/redaction';
import { captureLogs } from './support';

const R = '[REDACTED]';
const redactor = createRedactor();

// Test fixtures assembled at run time so no secret-looking literal sits in the repository.
const jwt = [
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9',
  'eyJzdWIiOiIxMjM0NTY3ODkwIn0',
  'SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
].join('.');
const pem = ['-----BEGIN RSA PRIVATE KEY-----', 'MIIEowIBAAKCAQEA7bq', 'abcDEF123', '-----END RSA PRIVATE KEY-----'].join('\n');
const awsKey = 'AKIA' + 'IOSFODNN7EXAMPLE';
const openAiKey = 'sk-' + 'proj-4f9a8b7c6d5e4f3a2b1c';
const stripeKey = 'sk_live_' + '51H8abcdefGHIJ1234';

describe('redactText', () => {
  it.each([
    ['Authorization: Bearer abc.def-123_XYZ', 'Authorization: Bearer [REDACTED]'],
    ['header Basic dXNlcjpwYXNzd29yZA== sent', 'header Basic [REDACTED] sent'],
    [`token ${jwt} here`, `token ${R} here`],
    [`key:\n${pem}\nend`, `key:\n${R}\nend`],
    [`aws ${awsKey} used`, `aws ${R} used`],
    [`openai ${openAiKey}`, `openai ${R}`],
    [`stripe ${stripeKey}`, `stripe ${R}`],
    ['https://api.example.com/v1?user=bob&password=hunter2&page=2', `https://api.example.com/v1?user=bob&password=${R}&page=2`],
    ['GET /x?api_key=abc123&access_token=tok456', `GET /x?api_key=${R}&access_token=${R}`],
    ['client_secret=s3cr3t; pwd=pa55', `client_secret=${R}; pwd=${R}`],
    ['login failed, password: "hunter2"', `login failed, password: "${R}"`],
    ['postgres://app:Sup3rS3cret@db.internal:5432/mcp', `postgres://app:${R}@db.internal:5432/mcp`],
  ])('masks %j', (input, expected) => {
    expect(redactor.redactText(input)).toBe(expected);
  });

  it.each([
    'Basic authentication is disabled',
    'connected to postgres://db.internal:5432/mcp as app',
    'agent 5f1c0c1e-2b7a-4c1e-9d1e-6a5b4c3d2e1f sent 42 events in 12 ms',
    'the token bucket refilled',
    'ordinary text about skis and sk-ates',
  ])('leaves non-secret text alone: %j', (input) => {
    expect(redactor.redactText(input)).toBe(input);
  });
  it('screens texts by literal needles without ever changing the outcome of the full pattern scan', () => {
    // The redactor skips a pattern when none of its needles is in the text; this
    // compares it with applying every pattern to every text, on secret-bearing
    // text in varied case and on random text built from the patterns' own alphabet.
    const unscreened = (text: string): string =>
      DEFAULT_REDACTION_POLICY.patterns.map(compilePattern).reduce((masked, pattern) => masked.replace(pattern, R), text);
    const pieces = ['Bearer ', 'bEaReR ', 'Basic ', 'BASIC ', 'eyJ', 'EYJ', '-----BEGIN RSA PRIVATE KEY-----', '-----END RSA PRIVATE KEY-----',
      'AKIA', 'ASIA', 'sk-', 'sk_live_', 'rk_test_', 'PassWord=', 'PWD: ', 'Client-Secret="', 'refresh_token=', 'X-Api-Key: ', 'private_key=',
      'https://u:', '@', 'abcDEF123xyz', 'QWERTYUIOPASDFGH', '0123456789', ' ', '\n', '.', '"', "'", '&', ';', 'ſ', 'İ', 'K'];
    let seed = 20261123;
    const random = (n: number): number => {
      // mulberry32: a small seeded generator, so a failure reproduces.
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    for (let i = 0; i < 5000; i++) {
      const text = Array.from({ length: 1 + random(8) }, () => pieces[random(pieces.length)]).join('');
      expect(redactor.redactText(text), JSON.stringify(text)).toBe(unscreened(text));
    }
    for (const [secret] of [[jwt], [pem], [awsKey], [openAiKey], [stripeKey]]) {
      expect(redactor.redactText(`x ${secret} y`)).toBe(unscreened(`x ${secret} y`));
    }

    // JSON documents: when the screen passes a document through as it is, redacting it in full changes nothing.
    const keys = ['id', 'name', 'Pass-Word', 'toK\u212Aen', 'API_KEY', 'x_api-key', 'set-cookie', 'limit', 'query', 'Credentials', 'pwd'];
    const values = ['"v"', '1', 'null', '"Bearer abcDEF123"', '"https://u:p@h"', '"tools/call"', '["a","eyJx.y.z"]', '{"nested":"ok"}'];
    for (let i = 0; i < 3000; i++) {
      const members = Array.from({ length: 1 + random(4) }, () => `"${keys[random(keys.length)]}":${values[random(values.length)]}`);
      const text = `{${members.join(',')}}`;
      const parsed: unknown = JSON.parse(text);
      const stored = redactor.redactJson(text, parsed);
      if (stored === text) expect(JSON.stringify(redactor.redact(parsed)), text).toBe(JSON.stringify(parsed));
      else expect(stored).toBe(JSON.stringify(redactor.redact(parsed)));
    }
  });
});

describe('redact', () => {
  it('masks every default key whatever its case and separators, in nested objects and arrays', () => {
    const spellings = (key: string) => [key, key.toUpperCase(), key.replace(/(token|key|secret|authorization|cookie)$/, '_$1')];
    for (const key of DEFAULT_REDACTION_POLICY.keys) {
      for (const spelled of spellings(key)) {
        const input = { outer: { list: [{ [spelled]: { any: 'value' }, keep: 'visible' }] } };
        expect(redactor.redact(input)).toEqual({ outer: { list: [{ [spelled]: R, keep: 'visible' }] } });
      }
    }
    expect(redactor.redact({ 'X-Api-Key': 'k', 'Set-Cookie': ['a=b'], access_token: 't', Client_Secret: 's' })).toEqual({
      'X-Api-Key': R,
      'Set-Cookie': R,
      access_token: R,
      Client_Secret: R,
    });
  });

  it('masks patterns inside string values and leaves other data untouched', () => {
    const input = {
      request: { url: 'https://x.test/?password=p1', count: 3, ok: true, nothing: null, when: new Date(0) },
      notes: ['plain', `Bearer ${jwt}`],
    };
    expect(redactor.redact(input)).toEqual({
      request: { url: `https://x.test/?password=${R}`, count: 3, ok: true, nothing: null, when: new Date(0) },
      notes: ['plain', `Bearer ${R}`],
    });
  });

  it('never mutates its input', () => {
    const input = { password: 'p', nested: { text: 'token=abc', list: ['Bearer xyz'] } };
    const snapshot = structuredClone(input);
    const output = redactor.redact(input);
    expect(input).toEqual(snapshot);
    expect(output).not.toBe(input);
    expect(output.nested).not.toBe(input.nested);
  });

  it('copes with cycles', () => {
    const input: Record<string, unknown> = { name: 'loop', secret: 's' };
    input.self = input;
    const output = redactor.redact(input);
    expect(output.secret).toBe(R);
    expect(output.self).toBe(output);
  });

  it('redacts errors while keeping their type', () => {
    const err = Object.assign(new RangeError('bad password=hunter2'), { token: 't' });
    const output = redactor.redact(err);
    expect(output).toBeInstanceOf(RangeError);
    expect(output.message).toBe(`bad password=${R}`);
    expect(output.stack).not.toContain('hunter2');
    expect(output.token).toBe(R);
    expect(err.message).toBe('bad password=hunter2');
  });

  it('redactJsonText redacts JSON documents held as text', () => {
    const json = JSON.stringify({ headers: { Authorization: 'Basic abc' }, body: { query: 'select 1', apiKey: 'k' } });
    expect(JSON.parse(redactor.redactJsonText(json))).toEqual({
      headers: { Authorization: R },
      body: { query: 'select 1', apiKey: R },
    });
  });

  it('adds configured keys, patterns and replacement to the defaults', () => {
    const custom = createRedactor({ keys: ['ssn'], patterns: ['/\\bacct-\\d{6}\\b/i'], replacement: '***' });
    expect(custom.redact({ SSN: '123', password: 'p', memo: 'ACCT-123456 paid' })).toEqual({
      SSN: '***',
      password: '***',
      memo: '*** paid',
    });
  });
});

describe('logger', () => {
  it('writes JSON lines with the service name and secrets masked', () => {
    const { logger, lines } = captureLogs();
    logger.info(
      { request: { headers: { authorization: 'Bearer abc' }, url: '/x?token=t1' }, user: 'alice' },
      'calling postgres://app:pw@db/mcp',
    );
    logger.child({ api_key: 'child-binding-secret' }).warn('from child');
    expect(lines[0]).toMatchObject({
      level: 'info',
      service: 'test',
      msg: `calling postgres://app:${R}@db/mcp`,
      request: { headers: { authorization: R }, url: `/x?token=${R}` },
      user: 'alice',
    });
    expect(JSON.stringify(lines)).not.toMatch(/abc|t1|:pw@|child-binding-secret/);
    expect(lines[1]).toMatchObject({ api_key: R, msg: 'from child' });
  });

  it('adds trace_id and span_id while a span is active', () => {
    const provider = new node.NodeTracerProvider();
    provider.register(); // installs the async context manager that makes a span "active"
    const { logger, lines } = captureLogs();
    logger.info('outside');
    const tracer = trace.getTracer('test');
    const ids = tracer.startActiveSpan('work', (span) => {
      logger.info('inside');
      span.end();
      return span.spanContext();
    });
    expect(lines[0].trace_id).toBeUndefined();
    expect(lines[1]).toMatchObject({ msg: 'inside', trace_id: ids.traceId, span_id: ids.spanId });
    expect(ids.traceId).toMatch(/^[0-9a-f]{32}$/);
  });
});
