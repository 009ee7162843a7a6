import type { CallGuard } from '../src/calls';
import * as grpc from '@grpc/grpc-js';
import { createLogger, type Logger } from '../src/logger';
import type { Redactor } from '../src/redaction';

export type LogLine = Record<string, unknown> & { level: string; msg?: string };

/** A real pino logger whose JSON lines land in `lines`. */
export function captureLogs(options: { level?: string; redactor?: Redactor } = {}): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger({
    service: 'test',
    level: options.level ?? 'debug',
    redactor: options.redactor,
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
  });
  return { logger, lines };
}

const serialize = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const deserialize = (bytes: Buffer): unknown => JSON.parse(bytes.toString('utf8'));

function jsonMethod(name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  };
}

/** A JSON-over-gRPC test service: one method of each kind. */
export const echoService = {
  call: jsonMethod('Call', false, false),
  stream: jsonMethod('Stream', false, true),
  chat: jsonMethod('Chat', true, true),
};

export interface EchoServer {
  client: grpc.Client;
  close(): Promise<void>;
}

export async function serveEcho(implementation: grpc.UntypedServiceImplementation): Promise<EchoServer> {
  const server = new grpc.Server();
  server.addService(echoService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    client,
    close: () =>
      new Promise<void>((resolve) => {
        client.close();
        server.tryShutdown(() => resolve());
      }),
  };
}

export type UnaryOutcome = { ok: true; value: unknown } | { ok: false; error: grpc.ServiceError };

export function callUnary(client: grpc.Client, request: unknown, options: grpc.CallOptions = {}): Promise<UnaryOutcome> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(echoService.call.path, serialize, deserialize, request, new grpc.Metadata(), options, (error, value) =>
      resolve(error ? { ok: false, error } : { ok: true, value }),
    );
  });
}

export function openStream(client: grpc.Client, request: unknown): grpc.ClientReadableStream<unknown> {
  return client.makeServerStreamRequest(echoService.stream.path, serialize, deserialize, request);
}

export function openChat(client: grpc.Client): grpc.ClientDuplexStream<unknown, unknown> {
  return client.makeBidiStreamRequest(echoService.chat.path, serialize, deserialize);
}

/** Resolves with everything the stream delivered and how it ended. */
export function collect(stream: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>) {
  return new Promise<{ messages: unknown[]; status: grpc.StatusObject | undefined; error: grpc.ServiceError | undefined }>(
    (resolve) => {
      const messages: unknown[] = [];
      let error: grpc.ServiceError | undefined;
      stream.on('data', (m) => messages.push(m));
      stream.on('error', (e: grpc.ServiceError) => (error = e));
      stream.on('status', (status: grpc.StatusObject) => {
        // 'status' can precede the last 'data'/'error' events by a tick.
        setImmediate(() => resolve({ messages, status, error }));
      });
    },
  );
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(25);
  }
  return check();
}

/** A guard that admits every call as a development admin: these tests are about the call plumbing, not auth. */
export const admitAll: CallGuard = {
  admit: async () => ({
    userId: '00000000-0000-0000-0000-000000000000',
    apiKeyId: undefined,
    via: 'unauthenticated_dev',
    roles: ['admin'],
    permissions: new Set(['*']),
    isAdmin: true,
  }),
};
