import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createCallHandlers, type CallContext } from '../src/calls';
import { CancelledError, DeadlineExceededError, InvalidArgumentError, NotFoundError, decodeBadRequest } from '../src/errors';
import { callUnary, captureLogs, collect, eventually, openChat, openStream, serveEcho, sleep, type EchoServer, admitAll } from './support';

let echo: EchoServer | undefined;
afterEach(async () => {
  await echo?.close();
  echo = undefined;
});

/** Resolves when the call's signal aborts, with what the handler observed. */
function watchAbort(ctx: CallContext) {
  const startedAt = Date.now();
  const remainingAtStart = ctx.remainingMs();
  return new Promise<{ reason: unknown; afterMs: number; remainingAtStart: number | undefined }>((resolve) =>
    ctx.signal.addEventListener('abort', () =>
      resolve({ reason: ctx.signal.reason, afterMs: Date.now() - startedAt, remainingAtStart }),
    ),
  );
}

describe('unary', () => {
  it('passes the request and context, and returns the response', async () => {
    const { logger } = captureLogs();
    let seen: CallContext | undefined;
    echo = await serveEcho({
      call: createCallHandlers({ logger, guard: admitAll }).unary('status:read', async (req: { n: number }, ctx) => {
        seen = ctx;
        return { doubled: req.n * 2 };
      }),
    });
    const metadata = new grpc.Metadata();
    metadata.set('x-request-id', 'r-1');
    const outcome = await new Promise<unknown>((resolve, reject) =>
      echo!.client.makeUnaryRequest(
        '/test.Echo/Call',
        (v: unknown) => Buffer.from(JSON.stringify(v)),
        (b: Buffer) => JSON.parse(b.toString()),
        { n: 21 },
        metadata,
        {},
        (err, value) => (err ? reject(err) : resolve(value)),
      ),
    );
    expect(outcome).toEqual({ doubled: 42 });
    expect(seen?.method).toBe('/test.Echo/Call');
    expect(seen?.metadata.get('x-request-id')).toEqual(['r-1']);
    expect(seen?.peer).toMatch(/^(ipv4:)?127\.0\.0\.1:\d+$/);
    expect(seen?.deadline).toBeUndefined();
    expect(seen?.remainingMs()).toBeUndefined();
    expect(seen?.signal.aborted).toBe(false);
  });

  it('aborts ctx.signal with DeadlineExceededError when the client deadline passes', async () => {
    const { logger, lines } = captureLogs();
    let observed: ReturnType<typeof watchAbort> | undefined;
    echo = await serveEcho({
      call: createCallHandlers({ logger, guard: admitAll }).unary('status:read', async (_req, ctx) => {
        observed = watchAbort(ctx);
        await observed;
        return {};
      }),
    });
    const outcome = await callUnary(echo.client, {}, { deadline: Date.now() + 300 });
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const { reason, afterMs, remainingAtStart } = await observed!;
    expect(reason).toBeInstanceOf(DeadlineExceededError);
    expect(afterMs).toBeGreaterThanOrEqual(200);
    expect(afterMs).toBeLessThan(1000);
    expect(remainingAtStart).toBeGreaterThan(150);
    expect(remainingAtStart).toBeLessThanOrEqual(300);
    await eventually(() => lines.some((l) => l.msg === 'call'));
    expect(lines.find((l) => l.msg === 'call')).toMatchObject({ level: 'warn', code: 'DEADLINE_EXCEEDED' });
  });

  it('aborts ctx.signal with CancelledError when the client cancels, and logs the call at debug', async () => {
    const { logger, lines } = captureLogs();
    let observed: ReturnType<typeof watchAbort> | undefined;
    echo = await serveEcho({
      call: createCallHandlers({ logger, guard: admitAll }).unary('status:read', async (_req, ctx) => {
        observed = watchAbort(ctx);
        await observed;
        return {};
      }),
    });
    const call = echo.client.makeUnaryRequest(
      '/test.Echo/Call',
      (v: unknown) => Buffer.from(JSON.stringify(v)),
      (b: Buffer) => JSON.parse(b.toString()),
      {},
      () => undefined,
    );
    await eventually(() => observed !== undefined);
    call.cancel();
    const { reason } = await observed!;
    expect(reason).toBeInstanceOf(CancelledError);
    await eventually(() => lines.some((l) => l.msg === 'call'));
    expect(lines.find((l) => l.msg === 'call')).toMatchObject({ level: 'debug', code: 'CANCELLED' });
  });

  it('logs one line per call: debug for OK, warn for client errors, error for INTERNAL', async () => {
    const { logger, lines } = captureLogs();
    echo = await serveEcho({
      call: createCallHandlers({ logger, guard: admitAll }).unary('status:read', async (req: { outcome: string }) => {
        if (req.outcome === 'missing') throw new NotFoundError('no such agent');
        if (req.outcome === 'bug') throw new Error('boom');
        return {};
      }),
    });
    await callUnary(echo.client, { outcome: 'ok' });
    await callUnary(echo.client, { outcome: 'missing' });
    await callUnary(echo.client, { outcome: 'bug' });
    const calls = lines.filter((l) => l.msg === 'call');
    expect(calls.map((l) => [l.level, l.code])).toEqual([
      ['debug', 'OK'],
      ['warn', 'NOT_FOUND'],
      ['error', 'INTERNAL'],
    ]);
    for (const line of calls) {
      expect(line.method).toBe('/test.Echo/Call');
      expect(typeof line.duration_ms).toBe('number');
    }
    expect(calls[2].err).toMatchObject({ message: 'boom' });
    expect(calls[1].err).toBeUndefined();
  });
});

describe('serverStreaming', () => {
  it('streams every message and ends the call when the handler resolves', async () => {
    const { logger } = captureLogs();
    echo = await serveEcho({
      stream: createCallHandlers({ logger, guard: admitAll }).serverStreaming('status:read', async (req: { count: number }, stream) => {
        for (let i = 0; i < req.count; i++) await stream.write({ i });
      }),
    });
    const result = await collect(openStream(echo.client, { count: 5 }));
    expect(result.messages).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
    expect(result.status?.code).toBe(grpc.status.OK);
  });

  it('applies backpressure: a paused client stalls the writer instead of growing server memory', async () => {
    const { logger } = captureLogs();
    const total = 2_000;
    const payload = 'x'.repeat(16 * 1024);
    let written = 0;
    echo = await serveEcho({
      stream: createCallHandlers({ logger, guard: admitAll }).serverStreaming('status:read', async (_req, stream) => {
        for (let i = 0; i < total; i++) {
          await stream.write({ i, payload });
          written++;
        }
      }),
    });
    const call = openStream(echo.client, {});
    const finished = collect(call);
    // A slow reader: takes a few messages, then stops. (A grpc-js client that never started
    // reading buffers everything itself, so the test reads first.)
    let received = 0;
    call.on('data', () => ++received === 5 && call.pause());
    await sleep(500);
    const stalledAt = written;
    await sleep(300);
    // The writer waits for 'drain': no progress while the client reads nothing, far from done (32 MB).
    expect(received).toBe(5);
    expect(written).toBe(stalledAt);
    expect(written).toBeLessThan(100);

    call.resume();
    const result = await finished;
    expect(result.status?.code).toBe(grpc.status.OK);
    expect(result.messages).toHaveLength(total);
    expect(written).toBe(total);
  });

  it('rejects pending writes once the client cancels, and the handler stops', async () => {
    const { logger } = captureLogs();
    let handlerError: unknown;
    echo = await serveEcho({
      stream: createCallHandlers({ logger, guard: admitAll }).serverStreaming('status:read', async (_req, stream) => {
        try {
          for (;;) await stream.write({ payload: 'y'.repeat(64 * 1024) });
        } catch (err) {
          handlerError = err;
          throw err;
        }
      }),
    });
    const call = openStream(echo.client, {});
    call.on('error', () => undefined);
    call.on('data', () => call.pause()); // reads one message, then nothing
    await sleep(200);
    call.cancel();
    expect(await eventually(() => handlerError !== undefined)).toBe(true);
    expect(handlerError).toBeInstanceOf(CancelledError);
  });
});

describe('bidiStreaming', () => {
  it('reads requests with for-await and answers each', async () => {
    const { logger } = captureLogs();
    echo = await serveEcho({
      chat: createCallHandlers({ logger, guard: admitAll }).bidiStreaming('status:read', async (requests: AsyncIterable<{ n: number }>, stream) => {
        for await (const req of requests) await stream.write({ n: req.n, squared: req.n * req.n });
      }),
    });
    const chat = openChat(echo.client);
    const result = collect(chat);
    for (const n of [1, 2, 3]) chat.write({ n });
    chat.end();
    const { messages, status } = await result;
    expect(messages).toEqual([
      { n: 1, squared: 1 },
      { n: 2, squared: 4 },
      { n: 3, squared: 9 },
    ]);
    expect(status?.code).toBe(grpc.status.OK);
  });

  it('a handler that throws mid-stream ends the call with the mapped status and details', async () => {
    const { logger } = captureLogs();
    echo = await serveEcho({
      chat: createCallHandlers({ logger, guard: admitAll }).bidiStreaming('status:read', async (requests: AsyncIterable<{ n: number }>, stream) => {
        for await (const req of requests) {
          if (req.n < 0) throw new InvalidArgumentError([{ field: 'n', description: 'must not be negative' }]);
          await stream.write({ n: req.n });
        }
      }),
    });
    const chat = openChat(echo.client);
    const result = collect(chat);
    chat.write({ n: 1 });
    chat.write({ n: -1 });
    const { messages, error } = await result;
    chat.end();
    expect(messages).toEqual([{ n: 1 }]);
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(decodeBadRequest(error!.metadata)).toEqual([{ field: 'n', description: 'must not be negative' }]);
  });
});
