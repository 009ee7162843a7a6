/**
 * Calls a method with request bytes exactly as given: the client's
 * serializers are the identity, so what reaches the server is the hostile
 * buffer itself, not whatever a generated encoder would make of it.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeBadRequest, type FieldViolation } from '@mcp/proto';
import type { MethodInfo } from './catalog';

export interface Outcome {
  code: grpc.status;
  details: string;
  violations: FieldViolation[];
  /** Response messages received, undecoded. */
  responses: Buffer[];
}

const identity = (b: Buffer): Buffer => b;
const DEFAULT_DEADLINE_MS = 30_000;

function settle(resolve: (o: Outcome) => void, responses: Buffer[]) {
  let done = false;
  return (err: grpc.ServiceError | null) => {
    if (done) return;
    done = true;
    resolve({
      code: err ? err.code : grpc.status.OK,
      details: err ? err.details : '',
      violations: err ? decodeBadRequest(err.metadata) : [],
      responses,
    });
  };
}

/**
 * A server stream that is still open after its first message (a live tail
 * or watch) counts as accepted: it is cancelled there and reported as OK.
 */
export function callRaw(
  client: grpc.Client,
  m: MethodInfo,
  messages: Buffer[],
  metadata: grpc.Metadata,
  deadlineMs = DEFAULT_DEADLINE_MS,
): Promise<Outcome> {
  const options: grpc.CallOptions = { deadline: Date.now() + deadlineMs };
  return new Promise((resolve) => {
    const responses: Buffer[] = [];
    const finish = settle(resolve, responses);
    if (!m.requestStream && !m.responseStream) {
      client.makeUnaryRequest(m.path, identity, identity, messages[0], metadata, options, (err, res) => {
        if (res) responses.push(res);
        finish(err);
      });
      return;
    }
    const call = m.requestStream
      ? client.makeBidiStreamRequest(m.path, identity, identity, metadata, options)
      : client.makeServerStreamRequest(m.path, identity, identity, messages[0], metadata, options);
    call.on('data', (res: Buffer) => {
      responses.push(res);
      if (!m.requestStream) {
        finish(null);
        call.cancel();
      }
    });
    call.on('error', (err: grpc.ServiceError) => finish(err));
    call.on('end', () => finish(null));
    if (m.requestStream) {
      const duplex = call as grpc.ClientDuplexStream<Buffer, Buffer>;
      for (const message of messages) duplex.write(message);
      duplex.end();
    }
  });
}

export function codeName(code: grpc.status): string {
  return grpc.status[code] ?? String(code);
}
